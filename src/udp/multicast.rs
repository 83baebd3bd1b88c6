//! Multicast memberships of a `UDPSocket` (`joinMulticastGroup`, `leaveMulticastGroup`,
//! Node's source-specific memberships) and the OS refusing one ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use std::io;
use std::net::IpAddr;

use super::{check_family, Phase, UdpSocket};
use crate::core::Ctx;
use crate::error::{ApiError, DomException, InputError, SocketError};
use crate::io::Action;

/// Most multicast groups one socket holds (Linux's default `IP_MAX_MEMBERSHIPS`).
pub const MAX_MULTICAST_GROUPS: usize = 20;

impl UdpSocket {
    pub(crate) fn check_join(&self, group: IpAddr) -> Result<(), ApiError> {
        self.check_group("joinMulticastGroup()", group)?;
        if self.multicast_groups().contains(&group) {
            return Err(ApiError::access(format!(
                "the socket has already joined {group}"
            )));
        }
        if self.source_memberships().iter().any(|&(g, _)| g == group) {
            return Err(ApiError::access(format!(
                "the socket has source-specific memberships of {group}; drop them first"
            )));
        }
        if self.memberships() >= MAX_MULTICAST_GROUPS {
            return Err(ApiError::quota(format!(
                "the socket holds {MAX_MULTICAST_GROUPS} groups, the most it may"
            )));
        }
        Ok(())
    }

    /// `joinMulticastGroup(group)`, checked by [`check_join`](Self::check_join).
    pub(crate) fn join(&mut self, group: IpAddr, ctx: &mut Ctx) -> Result<(), ApiError> {
        self.check_join(group)?;
        let groups = self.groups.get_or_insert_with(Default::default);
        if groups.try_push(group).is_err() {
            return Err(ApiError::quota("the socket holds the most groups it may"));
        }
        if self.phase == Phase::Open {
            ctx.action(Action::JoinMulticast {
                id: self.id,
                group,
                source: None,
            });
        }
        Ok(())
    }

    /// Checks an `addSourceSpecificMembership(source, group)` (the policy is asked after
    /// this passes).
    pub(crate) fn check_source_join(&self, source: IpAddr, group: IpAddr) -> Result<(), ApiError> {
        let verb = "addSourceSpecificMembership()";
        self.check_group(verb, group)?;
        self.check_source(source)?;
        if self.multicast_groups().contains(&group) {
            return Err(ApiError::access(format!(
                "the socket has joined {group} for every source; leave it first"
            )));
        }
        if self.source_memberships().contains(&(group, source)) {
            return Err(ApiError::access(format!(
                "the socket has already joined {group} from {source}"
            )));
        }
        if self.memberships() >= MAX_MULTICAST_GROUPS {
            return Err(ApiError::quota(format!(
                "the socket holds {MAX_MULTICAST_GROUPS} memberships, the most it may"
            )));
        }
        Ok(())
    }

    /// `addSourceSpecificMembership(source, group)`, checked by
    /// [`check_source_join`](Self::check_source_join).
    pub(crate) fn join_source(
        &mut self,
        source: IpAddr,
        group: IpAddr,
        ctx: &mut Ctx,
    ) -> Result<(), ApiError> {
        self.check_source_join(source, group)?;
        let sources = self.sources.get_or_insert_with(Default::default);
        if sources.try_push((group, source)).is_err() {
            return Err(ApiError::quota(
                "the socket holds the most memberships it may",
            ));
        }
        if self.phase == Phase::Open {
            ctx.action(Action::JoinMulticast {
                id: self.id,
                group,
                source: Some(source),
            });
        }
        Ok(())
    }

    /// `dropSourceSpecificMembership(source, group)`.
    pub(crate) fn leave_source(
        &mut self,
        source: IpAddr,
        group: IpAddr,
        ctx: &mut Ctx,
    ) -> Result<(), ApiError> {
        self.check_group("dropSourceSpecificMembership()", group)?;
        self.check_source(source)?;
        if !self.forget_source(group, source) {
            return Err(ApiError::access(format!(
                "the socket has not joined {group} from {source}"
            )));
        }
        if self.phase == Phase::Open {
            ctx.action(Action::LeaveMulticast {
                id: self.id,
                group,
                source: Some(source),
            });
        }
        Ok(())
    }

    /// `leaveMulticastGroup(group)`.
    pub(crate) fn leave(&mut self, group: IpAddr, ctx: &mut Ctx) -> Result<(), ApiError> {
        self.check_group("leaveMulticastGroup()", group)?;
        if !self.forget_group(group) {
            return Err(ApiError::access(format!(
                "the socket has not joined {group}"
            )));
        }
        if self.phase == Phase::Open {
            ctx.action(Action::LeaveMulticast {
                id: self.id,
                group,
                source: None,
            });
        }
        Ok(())
    }

    pub(crate) fn join_failed(
        &mut self,
        group: IpAddr,
        source: Option<IpAddr>,
        error: io::ErrorKind,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_bound()?;
        let what = match source {
            None => {
                self.forget_group(group);
                format!("could not join multicast group {group}")
            }
            Some(source) => {
                self.forget_source(group, source);
                format!("could not join multicast group {group} from {source}")
            }
        };
        self.error(SocketError::from_io_in(error, what), ctx);
        Ok(())
    }

    fn check_group(&self, verb: &str, group: IpAddr) -> Result<(), ApiError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(ApiError::new(
                DomException::InvalidStateError,
                format!(
                    "{verb} on a socket that is \"{}\"",
                    self.ready_state().as_str()
                ),
            ));
        }
        if !group.is_multicast() {
            return Err(ApiError::access(format!(
                "{group} is not a multicast address"
            )));
        }
        check_family(group, self.bind.ip(), "use multicast group")
    }

    /// A source of a source-specific membership: a unicast, specified address of the
    /// socket's family.
    fn check_source(&self, source: IpAddr) -> Result<(), ApiError> {
        if source.is_multicast() || source.is_unspecified() {
            return Err(ApiError::access(format!(
                "source {source} is not a unicast address"
            )));
        }
        check_family(source, self.bind.ip(), "use source")
    }

    /// Removes a source-specific membership; `false` if it was not there.
    fn forget_source(&mut self, group: IpAddr, source: IpAddr) -> bool {
        let Some(sources) = self.sources.as_mut() else {
            return false;
        };
        match sources.iter().position(|&m| m == (group, source)) {
            Some(at) => {
                sources.remove(at);
                true
            }
            None => false,
        }
    }

    /// Removes `group` from the joined ones; `false` if it was not there.
    fn forget_group(&mut self, group: IpAddr) -> bool {
        let Some(groups) = self.groups.as_mut() else {
            return false;
        };
        match groups.iter().position(|&g| g == group) {
            Some(at) => {
                groups.remove(at);
                true
            }
            None => false,
        }
    }
}
