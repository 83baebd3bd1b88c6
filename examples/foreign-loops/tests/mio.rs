//! The mio layer through every scenario, each under a `CheckedCore` (and the echo once plain).

mod common;

use std::time::Duration;

use common::{Calls, Layer};
use foreign_loops::mio_layer::MioLoop;
use foreign_loops::Engine;
use sockstate::sim::{Call, Returned};
use sockstate::Event;

impl Layer for MioLoop {
    fn with(engine: Engine) -> Self {
        MioLoop::new(engine).unwrap()
    }
    fn run(&mut self, timeout: Duration, app: impl FnMut(&mut Engine, Event) -> bool) -> bool {
        MioLoop::run(self, timeout, app)
    }
    fn engine(&self) -> &Engine {
        &self.engine
    }
    fn input_errors(&self) -> usize {
        self.input_errors.len()
    }
}

impl Calls for MioLoop {
    fn engine_call(&mut self, call: Call) -> Returned {
        self.engine.call(call).unwrap()
    }
    fn engine_mut_call<T>(&mut self, f: impl FnOnce(&mut Engine) -> T) -> T {
        f(&mut self.engine)
    }
}

#[test]
fn echo_10_mib() {
    common::echo_10_mib::<MioLoop>(false);
}

#[test]
fn echo_10_mib_checked() {
    common::echo_10_mib::<MioLoop>(true);
}

#[test]
fn udp_ping() {
    common::udp_ping::<MioLoop>(true);
}

#[test]
fn refused() {
    common::refused::<MioLoop>(true);
}

#[test]
fn reset() {
    common::reset::<MioLoop>(true);
}

#[test]
fn tls_client() {
    common::tls_client::<MioLoop>(true);
}
