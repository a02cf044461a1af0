//! The integration tests, as one binary.
//!
//! One test binary instead of one per file: each would link wasmtime, the emulator and the
//! crate again (about 450 MB of debug build and a link step each), and `tests/support` would
//! be compiled into every one of them. Each file here is a module named after what it tests;
//! run one with `cargo test --test it MODULE::` (e.g. `cargo test --test it sync_ldap::`).

mod support;

mod cli;
mod directory_ldap;
mod event_hub;
mod example_fixtures;
mod ftrack_session;
mod hostile_input;
mod listen;
mod live_sync;
mod live_sync_ad;
mod package;
mod rule_fixtures;
mod rules_build;
mod rules_new;
mod rules_registry;
mod rules_wasm;
mod security_roles;
mod sync_e2e;
mod sync_events;
mod sync_guards;
mod sync_ldap;
mod sync_rules;
