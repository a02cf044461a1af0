//! The `ldap2ftrack` binary; everything lives in the library so tests can drive it.

/// mimalloc instead of the system allocator: ldap3 copies every decoded message and a large
/// directory means millions of small strings, so malloc/free dominate the client's CPU time
/// and memory with glibc (measured: BENCHMARKS.md, "Scale").
/// `--features system-alloc` leaves the system allocator in place, for heap profilers
/// such as heaptrack that watch `malloc` (BENCHMARKS.md, "Where the memory goes").
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    ldap2ftrack::cli::main()
}

/// A run allocates and frees hundreds of megabytes of small objects once and exits; with
/// transparent huge pages each fresh 2 MiB page is zeroed whole on first touch and the
/// allocator's purges split them again. Off for this process, a 100,000-user plan takes
/// 3.6–3.9 s instead of 4.2–5.5 s (BENCHMARKS.md, "Scale").
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours;
    // on a kernel without it the call fails and nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
