//! Everything the spec leaves to "the implementation", as fields with documented defaults
//! (DESIGN: mechanism in code, policy in config).

use std::time::Duration;

crate::options_struct! {
    /// Limits and timeouts shared by every socket of one [`Core`](crate::Core).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sockstate::Config::default().close_timeout(Duration::from_secs(5));
    /// # let _ = sockstate::Core::new(config);
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Config {
        /// `send` returns `true` while `bufferedAmount` after queueing is at most this
        /// ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket); default 65 536).
        pub high_water_mark: usize,
        /// A `send` that would take `bufferedAmount` above this is refused with
        /// `QuotaExceededError` and queues nothing (default 16 MiB).
        pub send_buffer_limit: usize,
        /// From `open()` to `Open`, DNS included; then `NetworkTimeoutError` (default 20 s).
        pub connect_timeout: Duration,
        /// RFC 8305 "Connection Attempt Delay": a new attempt starts when the previous one has been
        /// pending this long (default 250 ms).
        pub connection_attempt_delay: Duration,
        /// From `close()` (or a peer FIN) until the peer's TCP has acknowledged every byte we sent
        /// and our FIN ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): a peer that does not take it all in this time gets
        /// `NetworkTimeoutError` (default 30 s). Also bounds a UDP socket's `closing`.
        pub close_timeout: Duration,
        /// Once the peer's TCP has acknowledged everything, how long to go on reading and
        /// discarding while waiting for the peer's FIN before releasing the socket anyway, so that
        /// a peer still writing is not reset while it reads our last bytes (default 2 s).
        pub linger_timeout: Duration,
        /// The longest wait between two [`Action::QueryUnacked`](crate::Action::QueryUnacked)
        /// while a closing socket waits for the peer to acknowledge its last bytes: queries start
        /// 1 ms apart and the wait doubles up to this (default 100 ms).
        pub unacked_poll_interval: Duration,
        /// Data read while the socket was suspended that the core holds for the app; more is an
        /// [`InputError`](crate::InputError), since a driver must stop reading once told to
        /// (default 256 KiB).
        pub max_held_bytes: usize,
        /// Datagrams a `UDPSocket` queues for sending; one more is `QuotaExceededError`, as a send
        /// above [`send_buffer_limit`](Config::send_buffer_limit) is ([BEHAVIOUR §0](crate::behaviour#0-everywhere): every queue has a
        /// bound, also one of empty datagrams). Also bounds the datagrams held while suspended
        /// (default 4096).
        pub max_queued_datagrams: usize,
        /// Datagrams a `UDPSocket` has handed out in
        /// [`Action::SendDatagrams`](crate::Action::SendDatagrams) and not yet seen answered
        /// ([`Input::Sent`](crate::Input::Sent), [`Input::SendFailed`](crate::Input::SendFailed)),
        /// so the most one action carries (default 64, the kernel's most GSO segments; 0
        /// counts as 1). `bufferedAmount` and `Drain` follow the answers exactly, datagram by
        /// datagram. 1 gives the one-at-a-time contract of a layer that cannot hold several.
        pub max_datagrams_in_flight: usize,
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            high_water_mark: 65_536,
            send_buffer_limit: 16 << 20,
            connect_timeout: Duration::from_secs(20),
            connection_attempt_delay: Duration::from_millis(250),
            close_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
            unacked_poll_interval: Duration::from_millis(100),
            max_held_bytes: 256 << 10,
            max_queued_datagrams: 4096,
            max_datagrams_in_flight: 64,
        }
    }
}
