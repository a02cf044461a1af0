//! The sandbox a rule module runs in: the per-store host state, a WASI context with no
//! capabilities (no preopened dirs, env, args, network or stdio; a fixed clock and a fixed
//! random sequence, so a rule gives the same answer on every run), the memory limits, and
//! the host `log` import routed into tracing under the module's name.
//!
//! Rust guests built for `wasm32-wasip2` import a dozen WASI interfaces through std even
//! when the rule never uses them; linking them against an empty context keeps such modules
//! loadable while granting nothing.

use super::bindings::ldap2ftrack::rules::{host, types};
use super::limits;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything one store (one instance of one module) owns on the host side.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: StoreLimits,
    /// The module's name, for log lines (the file name until metadata is read).
    pub(super) module: Arc<str>,
    /// Bytes logged during the current call; past the cap, messages are dropped.
    log_bytes: usize,
    dropped_logs: usize,
    /// The last message logged at error level during the current call: the SDK logs a
    /// panic's message there just before the trap, so the trap error can say what happened.
    pub(super) last_error: Option<String>,
}

impl HostState {
    pub fn new(module: Arc<str>) -> HostState {
        let mut wasi = WasiCtx::builder();
        wasi.wall_clock(FixedClock)
            .monotonic_clock(FixedClock)
            .secure_random(FixedRandom::new())
            .insecure_random(FixedRandom::new())
            .insecure_random_seed(0x6c64_6170_3266_7472_6163_6b00_0000_0001)
            .max_random_size(64 * 1024)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits::MEMORY_BYTES)
                .memories(limits::MEMORIES)
                .tables(limits::TABLES)
                .table_elements(limits::TABLE_ELEMENTS)
                .instances(limits::INSTANCES)
                .trap_on_grow_failure(true)
                .build(),
            module,
            log_bytes: 0,
            dropped_logs: 0,
            last_error: None,
        }
    }

    /// The store's resource table, for the replaced WASI functions (`no_wait`).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Resets the per-call counters.
    pub fn begin_call(&mut self) {
        self.log_bytes = 0;
        self.dropped_logs = 0;
        self.last_error = None;
    }

    /// Reports messages dropped because the module logged too much in one call.
    pub fn end_call(&mut self) {
        if self.dropped_logs > 0 {
            tracing::warn!(
                rule = &*self.module,
                "rule module `{}` logged more than {} bytes in one call; {} messages were dropped",
                self.module,
                limits::LOG_BYTES_PER_CALL,
                self.dropped_logs
            );
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let mut message = super::convert::clean_text(message);
        if message.len() > limits::LOG_MESSAGE_BYTES {
            let mut cut = limits::LOG_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        if level == types::LogLevel::Error {
            self.last_error = Some(message.clone());
        }
        self.log_bytes += message.len();
        if self.log_bytes > limits::LOG_BYTES_PER_CALL {
            self.dropped_logs += 1;
            return;
        }
        let rule = &*self.module;
        match level {
            types::LogLevel::Trace => tracing::trace!(rule, "{message}"),
            types::LogLevel::Debug => tracing::debug!(rule, "{message}"),
            types::LogLevel::Info => tracing::info!(rule, "{message}"),
            types::LogLevel::Warn => tracing::warn!(rule, "{message}"),
            types::LogLevel::Error => tracing::error!(rule, "{message}"),
        }
    }
}

/// Both WASI clocks read a constant: 2000-01-01T00:00:00Z for the wall clock, zero for the
/// monotonic clock. Dates a rule needs come from the host in the hook arguments.
struct FixedClock;

const FIXED_WALL_CLOCK: Duration = Duration::from_secs(946_684_800);

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A fixed pseudo-random sequence (splitmix64 from a constant seed), restarted with each
/// instance: hash maps work, but nothing differs between runs.
struct FixedRandom(u64);

impl FixedRandom {
    fn new() -> FixedRandom {
        FixedRandom(0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl rand_core::TryRng for FixedRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn random_is_a_fixed_sequence() {
        let (mut a, mut b) = (FixedRandom::new(), FixedRandom::new());
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
