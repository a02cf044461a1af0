//! Rule modules cannot block.
//!
//! Fuel and epoch deadlines only tick while WebAssembly runs; a call that sits in a host
//! function (a `std::thread::sleep` is `wasi:clocks/monotonic-clock.subscribe-duration`,
//! then `wasi:io/poll.poll`) is out of their reach, and wasmtime-wasi's implementations of
//! those really wait. So the WASI functions that could wait are replaced, on the module's
//! linker, with ones that answer at once:
//!
//! - **Timers** follow the sandbox's clock, which never moves (see `sandbox::FixedClock`): a
//!   timer for now or the past is ready, a timer for later never is.
//! - **`poll` and `pollable.block`** look at the pollables once. When one is ready, they
//!   return as WASI says; when none is, the call traps with [`WouldWait`] instead of
//!   waiting. With no files, no sockets, an empty stdin and stdout/stderr that swallow
//!   everything, only a timer can be "not ready".
//!
//! Sockets cannot be created at all (`sandbox`: TCP and UDP are not allowed, so the
//! constructors answer `access-denied` before making an OS socket). Every other WASI function a module can reach returns at once, so the per-call epoch
//! deadline (and the run budget) always gets its turn.

use super::sandbox::HostState;
use std::time::Duration;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::{DynPollable, Pollable};

/// The WASI version wasmtime-wasi 48 defines; guests importing an older 0.2.x link to it.
const WASI: &str = "0.2.12";

/// The trap of a call that would have waited.
#[derive(Debug)]
pub struct WouldWait;

impl std::fmt::Display for WouldWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "waited for a timer or stream that is not ready (a sleep, a timeout, a socket): \
             rule modules cannot block, and the sandbox's clock never moves",
        )
    }
}

impl std::error::Error for WouldWait {}

/// Replaces the waiting WASI functions in `linker`, which already holds wasmtime-wasi's.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI}"))?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            Ok((timer(store.data_mut().table(), nanos == 0)?,))
        },
    )?;
    // The clock reads 0 for ever, so an instant is reached only when it is 0.
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            Ok((timer(store.data_mut().table(), when == 0)?,))
        },
    )?;

    let mut poll = linker.instance(&format!("wasi:io/poll@{WASI}"))?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let table = store.data_mut().table();
            let ready = at_once(table.poll(pollables)).ok_or(WouldWait)??;
            if ready.is_empty() {
                return Err(WouldWait.into());
            }
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            let table = store.data_mut().table();
            at_once(table.block(pollable)).ok_or(WouldWait)??;
            Ok(())
        },
    )?;

    linker.allow_shadowing(false);
    Ok(())
}

/// A timer pollable: ready at once, or never.
fn timer(table: &mut ResourceTable, ready: bool) -> wasmtime::Result<Resource<DynPollable>> {
    let timer = table.push(Timer { ready })?;
    wasmtime_wasi::p2::subscribe(table, timer)
}

struct Timer {
    ready: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Timer {
    async fn ready(&mut self) {
        if !self.ready {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `future` until it would wait: its output when it finishes without waiting, `None`
/// when it would have to. Inside wasmtime-wasi's Tokio runtime, which its pollables need;
/// the zero timeout polls the future once before it gives up.
fn at_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    wasmtime_wasi::runtime::in_tokio(async { tokio::time::timeout(Duration::ZERO, future).await })
        .ok()
}
