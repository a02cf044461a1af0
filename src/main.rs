//! The `ldap2ftrack` binary; everything lives in the library so tests can drive it.

/// mimalloc instead of the system allocator: ldap3 copies every decoded message and a large
/// directory means millions of small strings, so malloc/free dominate the client's CPU time
/// and memory with glibc (measured: BENCHMARKS.md, "Scale").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ldap2ftrack::cli::run()
}
