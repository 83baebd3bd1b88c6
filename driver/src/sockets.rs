//! The driver as [`Sockets`]: app code written against the trait (and tested by hand, under
//! the checker and on the simulated network) runs here unchanged, on real sockets.

use std::time::Instant;

use sockstate::{ApiError, Call, Core, Returned, Sockets};

use crate::Driver;

/// The clock is the real one: calls are made at `Instant::now()` and recorded as the driver's own methods record them
/// ([`Config::record`](crate::Config::record)): a call made through the trait and the same
/// call made through [`Driver::send`] and its siblings are one and the same step of the core.
///
/// ```
/// use sockstate_driver::{Config, Driver, Sockets, TcpOptions};
///
/// fn open(net: &mut impl Sockets, port: u16) -> Result<(), sockstate::ApiError> {
///     let id = net.tcp_open("127.0.0.1", port, TcpOptions::default())?;
///     assert!(net.tcp_send(id, "too early").is_err()); // not open yet
///     net.tcp_close(id)
/// }
/// let mut driver = Driver::new(Config::default())?;
/// open(&mut driver, 9)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Sockets for Driver {
    fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        let now = Instant::now();
        let call = &call;
        self.recorded(now, || call.clone(), |core| call.apply(core, now), |r| *r)
    }

    fn core(&self) -> &Core {
        Driver::core(self)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
