//! A rule module that misbehaves on purpose, so the tests can prove the host contains each
//! failure with a clear error and keeps working (and cannot block it: `sleep`, `block`,
//! `poll-forever`, `spin-on-timer`). `mode` picks the misbehaviour; with mode
//! `by-entry`, the entry's `mode` attribute picks it per entry.

use ldap2ftrack_rules::prelude::*;

pub struct Hostile {
    mode: String,
}

fn misbehave(mode: &str, entry: &Entry, proposal: UserDecision) -> Result<UserDecision, String> {
    match mode {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            // Grab memory without touching it, 8 MiB at a time.
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut b: Vec<u8> = Vec::with_capacity(8 << 20);
                b.push(1);
                blocks.push(std::hint::black_box(b));
            }
        }
        "huge-output" => Ok(UserDecision::Skip("x".repeat(4 << 20))),
        "panic" => panic!("boom: {} is not welcome here", entry.dn),
        "empty-username" => Ok(UserDecision::Sync(UserFields::default())),
        "reject" => Err(format!("{} has no employee number", entry.dn)),
        "log-flood" => {
            for i in 0..5_000 {
                log::info(&format!("line {i} {}", "-".repeat(100)));
            }
            Ok(proposal)
        }
        "sleep" => {
            // A real sleep: wasi:clocks subscribe-duration, then wasi:io/poll.
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(proposal)
        }
        "block" => {
            wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
            Ok(proposal)
        }
        "poll-forever" => {
            // Asks a timer for an hour from now whether it is ready, until it is.
            let timer = wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000);
            while !timer.ready() {
                let ready = wasi::io::poll::poll(&[&timer]);
                std::hint::black_box(ready);
            }
            Ok(proposal)
        }
        "spin-on-timer" => {
            // Never waits, never finishes: asks an hour-long timer forever.
            let timer = wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000);
            while !timer.ready() {}
            Ok(proposal)
        }
        "zero-sleep" => {
            // A timer that is due now is ready: this returns.
            wasi::clocks::monotonic_clock::subscribe_duration(0).block();
            Ok(proposal)
        }
        "clock" => {
            // The sandbox's clock is fixed: 2000-01-01.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let fs = std::fs::read_dir("/").is_ok();
            let env = std::env::vars().count();
            Ok(UserDecision::Skip(format!("clock={now} fs={fs} env={env}")))
        }
        _ => Ok(proposal),
    }
}

ldap2ftrack_rules::export_rules! {
    impl Rules for Hostile {
        fn metadata() -> Metadata {
            Metadata::new("hostile", "0.1.0", "misbehaves on purpose (tests only)")
                .key(ConfigKey::string("mode").required().describe("how to misbehave"))
        }

        fn configure(config: &Config) -> Result<Self, String> {
            let mode = config.string("mode")?.unwrap_or_default();
            if mode == "refuse" {
                return Err("mode `refuse` refuses every configuration".into());
            }
            if mode == "panic-in-configure" {
                panic!("configure exploded");
            }
            Ok(Hostile { mode })
        }

        fn transform_user(&self, entry: &Entry, proposal: UserDecision) -> Result<UserDecision, String> {
            let mode = if self.mode == "by-entry" {
                entry.first("mode").unwrap_or("ok").to_string()
            } else {
                self.mode.clone()
            };
            misbehave(&mode, entry, proposal)
        }
    }
}
