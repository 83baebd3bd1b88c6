//! The datagrams of one [`Action::SendDatagrams`](crate::Action::SendDatagrams): one held
//! inline, so that a request or a reply (the usual lone datagram) costs no allocation, or
//! several in a `Vec`.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;

use bytes::Bytes;

/// One datagram and its destination.
type Datagram = (Bytes, SocketAddr);

/// Datagrams and their destinations, in order (at least one in an action). Read it as a
/// slice (`len`, `iter`, indexing) or take the datagrams by value (`for (data, to) in
/// datagrams`); [`Vec::from`] and `.into()` convert both ways.
///
/// ```
/// use sockstate::Datagrams;
///
/// let to = "127.0.0.1:7".parse().unwrap();
/// let one = Datagrams::from(vec![("ping".into(), to)]);
/// assert_eq!(one.len(), 1);
/// assert_eq!(one, [("ping".into(), to)]);
/// for (data, remote) in one {
///     assert_eq!((&data[..], remote), (&b"ping"[..], to));
/// }
/// ```
#[derive(Clone)]
pub struct Datagrams(Repr);

#[derive(Clone)]
enum Repr {
    One([Datagram; 1]),
    Many(Vec<Datagram>),
}

impl Datagrams {
    /// One datagram, held inline.
    pub fn one(data: Bytes, to: SocketAddr) -> Datagrams {
        Datagrams(Repr::One([(data, to)]))
    }
}

impl Deref for Datagrams {
    type Target = [Datagram];

    #[inline]
    fn deref(&self) -> &[Datagram] {
        match &self.0 {
            Repr::One(one) => one,
            Repr::Many(many) => many,
        }
    }
}

impl fmt::Debug for Datagrams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Datagram>> for Datagrams {
    /// A lone datagram moves inline (the `Vec` is dropped).
    fn from(mut many: Vec<Datagram>) -> Datagrams {
        match many.len() {
            1 => Datagrams(Repr::One([many.pop().expect("one datagram")])),
            _ => Datagrams(Repr::Many(many)),
        }
    }
}

impl From<Datagrams> for Vec<Datagram> {
    fn from(datagrams: Datagrams) -> Vec<Datagram> {
        match datagrams.0 {
            Repr::One(one) => Vec::from(one),
            Repr::Many(many) => many,
        }
    }
}

impl FromIterator<Datagram> for Datagrams {
    fn from_iter<I: IntoIterator<Item = Datagram>>(iter: I) -> Datagrams {
        Vec::from_iter(iter).into()
    }
}

impl PartialEq for Datagrams {
    /// The same datagrams, however held.
    fn eq(&self, other: &Datagrams) -> bool {
        **self == **other
    }
}

impl Eq for Datagrams {}

impl<const N: usize> PartialEq<[Datagram; N]> for Datagrams {
    fn eq(&self, other: &[Datagram; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<[Datagram]> for Datagrams {
    fn eq(&self, other: &[Datagram]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<Datagram>> for Datagrams {
    fn eq(&self, other: &Vec<Datagram>) -> bool {
        **self == other[..]
    }
}

impl<'a> IntoIterator for &'a Datagrams {
    type Item = &'a Datagram;
    type IntoIter = std::slice::Iter<'a, Datagram>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Datagrams {
    type Item = Datagram;
    type IntoIter = DatagramsIter;

    fn into_iter(self) -> DatagramsIter {
        DatagramsIter(match self.0 {
            Repr::One(one) => Iter::One(one.into_iter()),
            Repr::Many(many) => Iter::Many(many.into_iter()),
        })
    }
}

/// The datagrams of a [`Datagrams`], by value, in order.
#[derive(Debug)]
pub struct DatagramsIter(Iter);

#[derive(Debug)]
enum Iter {
    One(std::array::IntoIter<Datagram, 1>),
    Many(std::vec::IntoIter<Datagram>),
}

impl Iterator for DatagramsIter {
    type Item = Datagram;

    #[inline]
    fn next(&mut self) -> Option<Datagram> {
        match &mut self.0 {
            Iter::One(one) => one.next(),
            Iter::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Iter::One(one) => one.size_hint(),
            Iter::Many(many) => many.size_hint(),
        }
    }
}

impl DoubleEndedIterator for DatagramsIter {
    fn next_back(&mut self) -> Option<Datagram> {
        match &mut self.0 {
            Iter::One(one) => one.next_back(),
            Iter::Many(many) => many.next_back(),
        }
    }
}

impl ExactSizeIterator for DatagramsIter {}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &'static [u8], port: u16) -> Datagram {
        (
            Bytes::from_static(b),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
    }

    #[test]
    fn one_or_many_read_and_compare_as_the_same_datagrams() {
        let one = Datagrams::one(d(b"x", 1).0, d(b"x", 1).1);
        assert_eq!(one, Datagrams::from(vec![d(b"x", 1)]));
        assert_eq!(one, Datagrams(Repr::Many(vec![d(b"x", 1)])), "however held");
        assert_eq!(Vec::from(one.clone()), [d(b"x", 1)]);
        let many: Datagrams = [d(b"a", 1), d(b"", 2), d(b"c", 3)].into_iter().collect();
        assert_eq!((many.len(), &many[1]), (3, &d(b"", 2)));
        assert_eq!(many.clone().into_iter().len(), 3);
        let back: Vec<_> = many.clone().into_iter().rev().collect();
        assert_eq!(back, [d(b"c", 3), d(b"", 2), d(b"a", 1)]);
        assert_eq!((&many).into_iter().count(), 3);
        assert_ne!(one, many);
        assert!(format!("{one:?}").starts_with("[(b\"x\""));
    }
}
