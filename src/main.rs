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
    #[cfg(not(feature = "system-alloc"))]
    return_freed_memory_soon();
    ldap2ftrack::cli::main()
}

/// mimalloc 3 keeps freed pages for a second before giving them back (version 2 kept them
/// 10 ms). A run frees the read's buffers and pages of rows while it builds what it keeps,
/// so a second is most of a run: at 100,000 users the peak was 57 MB higher (BENCHMARKS.md,
/// issue 21). 10 ms, as before, gives that back for a few percent of wall time.
#[cfg(not(feature = "system-alloc"))]
fn return_freed_memory_soon() {
    /// `mi_option_purge_delay` in mimalloc's `include/mimalloc.h` (the same index in v2 and
    /// v3); the Rust bindings do not name it.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // An operator's MIMALLOC_PURGE_DELAY wins (mimalloc reads it itself).
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option, which mimalloc reads whenever it purges; called
    // before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
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
