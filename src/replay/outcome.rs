//! What a replay went through ([`Summary`], [`End`]) and why it stopped ([`ReplayError`],
//! [`Divergence`]).

use std::fmt;
use std::time::Duration;

use super::FormatError;

/// How a recording ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// Not yet read to its end.
    #[default]
    Running,
    /// An end record: the recording is complete.
    Complete,
    /// An end record saying the recorder stopped early (its writer fell behind, or failed):
    /// everything up to it replayed; the session went on without being recorded.
    Stopped,
    /// No end record: the file was cut short (the process died, or the copy is incomplete);
    /// everything up to its last whole record replayed.
    Cut,
}

/// Counts of what a replay went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Records replayed (every call, input, accepted connection, timeout and poll).
    pub steps: u64,
    /// App calls.
    pub calls: u64,
    /// Inputs.
    pub inputs: u64,
    /// Accepted connections.
    pub accepted: u64,
    /// `handle_timeout` calls.
    pub timeouts: u64,
    /// `poll_output` calls.
    pub polls: u64,
    /// Actions among the outputs.
    pub actions: u64,
    /// Events among the outputs.
    pub events: u64,
    /// Time from the recorder's epoch to the last step.
    pub duration: Duration,
    /// Bytes of the recording.
    pub bytes: usize,
    /// How the recording ended.
    pub end: End,
}

impl Summary {
    /// Whether the recording was read to its end record and was complete.
    pub fn complete(&self) -> bool {
        self.end == End::Complete
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.end {
            End::Complete => "complete",
            End::Stopped => "the recorder stopped early",
            End::Cut => "cut short (no end record)",
            End::Running => "not read to its end",
        };
        write!(
            f,
            "{} steps over {:.3} s ({} calls, {} inputs, {} accepted, {} timeouts, {} polls: \
             {} actions, {} events), {} bytes; {end}",
            self.steps,
            self.duration.as_secs_f64(),
            self.calls,
            self.inputs,
            self.accepted,
            self.timeouts,
            self.polls,
            self.actions,
            self.events,
            self.bytes,
        )
    }
}

/// Why a replay stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file is not a readable recording.
    Format(FormatError),
    /// The core did something other than what the recording says.
    Diverged(Box<Divergence>),
    /// A call of the recording gave a TLS config, and the replay was not handed one
    /// ([`Replay::with_client_tls`](super::Replay::with_client_tls),
    /// [`Replay::with_server_tls`](super::Replay::with_server_tls)).
    NeedsTlsConfig {
        /// The step (0-based record number).
        step: u64,
        /// The call.
        call: String,
    },
    /// A recorded time cannot be represented as an `Instant` from the replay's base.
    Time {
        /// The step.
        step: u64,
    },
    /// A TLS config could not be built from what the recording says of it.
    TlsConfig {
        /// The step.
        step: u64,
        /// What rustls said.
        error: String,
    },
}

/// The first step at which the replayed core differs from the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The step (0-based record number, counting every record).
    pub step: u64,
    /// The step's time since the recorder's epoch (`None` for a poll, which has none).
    pub at: Option<Duration>,
    /// What was done at that step.
    pub what: String,
    /// What the recording says came of it.
    pub recorded: String,
    /// What comes of it now.
    pub replayed: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Format(e) => e.fmt(f),
            ReplayError::Diverged(d) => {
                write!(f, "the replay diverged at step {}", d.step)?;
                if let Some(at) = d.at {
                    write!(f, " ({:.3} ms)", at.as_secs_f64() * 1e3)?;
                }
                write!(
                    f,
                    ", {}: the recording says {}, the core now gives {}",
                    d.what, d.recorded, d.replayed
                )
            }
            ReplayError::NeedsTlsConfig { step, call } => write!(
                f,
                "step {step}, {call}, was given a TLS config: hand the replay one \
                 (Replay::with_client_tls / with_server_tls)"
            ),
            ReplayError::TlsConfig { step, error } => {
                write!(f, "step {step}: no TLS config from the recording: {error}")
            }
            ReplayError::Time { step } => {
                write!(
                    f,
                    "step {step}: its time is out of reach of the replay's clock"
                )
            }
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<FormatError> for ReplayError {
    fn from(e: FormatError) -> Self {
        ReplayError::Format(e)
    }
}
