//! The tokio layer through every scenario, each under a `CheckedCore` (and the echo once
//! plain), on a current-thread runtime.

mod common;

use std::time::Duration;

use common::{Calls, Layer};
use foreign_loops::tokio_layer::TokioLoop;
use foreign_loops::Engine;
use sockstate::sim::{Call, Returned};
use sockstate::Event;

/// The loop and the runtime its task runs on.
struct OnTokio {
    runtime: tokio::runtime::Runtime,
    inner: TokioLoop,
}

impl Layer for OnTokio {
    fn with(engine: Engine) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let inner = TokioLoop::new(engine);
        OnTokio { runtime, inner }
    }
    fn run(&mut self, timeout: Duration, app: impl FnMut(&mut Engine, Event) -> bool) -> bool {
        self.runtime.block_on(self.inner.run(timeout, app))
    }
    fn engine(&self) -> &Engine {
        &self.inner.engine
    }
    fn input_errors(&self) -> usize {
        self.inner.input_errors.len()
    }
}

impl Calls for OnTokio {
    fn engine_call(&mut self, call: Call) -> Returned {
        self.inner.engine.call(call).unwrap()
    }
    fn engine_mut_call<T>(&mut self, f: impl FnOnce(&mut Engine) -> T) -> T {
        f(&mut self.inner.engine)
    }
}

#[test]
fn echo_10_mib() {
    common::echo_10_mib::<OnTokio>(false);
}

#[test]
fn echo_10_mib_checked() {
    common::echo_10_mib::<OnTokio>(true);
}

#[test]
fn udp_ping() {
    common::udp_ping::<OnTokio>(true);
}

#[test]
fn refused() {
    common::refused::<OnTokio>(true);
}

#[test]
fn reset() {
    common::reset::<OnTokio>(true);
}

#[test]
fn tls_client() {
    common::tls_client::<OnTokio>(true);
}
