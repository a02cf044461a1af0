//! How many threads a stage that works user by user spreads over (the rules, the diff): one
//! per core, each with enough users to be worth a thread's start and its share of the merge.

/// Below this many users per thread, fewer threads are used.
pub const MIN_USERS_PER_THREAD: usize = 4096;

/// Threads for `users` users: one per core, at least one, each with at least
/// [`MIN_USERS_PER_THREAD`] users.
pub fn threads_for(users: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(users / MIN_USERS_PER_THREAD).max(1)
}
