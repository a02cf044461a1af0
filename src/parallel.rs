//! How many threads a stage that works user by user spreads over (assemble, the rules, the
//! diff, the plan's rendering): one per core, each with enough users to be worth a thread's
//! start and its share of the merge; the ways such a stage hands out its parts (owned,
//! borrowed, borrowed by weight, borrowed with a state each), and two jobs side by side.

/// Below this many users per thread, fewer threads are used.
pub const MIN_USERS_PER_THREAD: usize = 4096;

/// Threads for `users` users: one per core, at least one, each with at least
/// [`MIN_USERS_PER_THREAD`] users.
pub fn threads_for(users: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(users / MIN_USERS_PER_THREAD).max(1)
}

/// `a` and `b`: side by side when `side_by_side` (`b` on a scoped thread of its own), else
/// one after the other. A panic in `b` is raised again here.
pub fn join<A, B: Send>(
    side_by_side: bool,
    a: impl FnOnce() -> A,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if !side_by_side {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let b = scope.spawn(b);
        let a = a();
        match b.join() {
            Ok(b) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Splits `items` into `parts` consecutive parts and runs `f` on each with the index of its
/// first item, a scoped thread per part after the first (which runs on the calling thread);
/// the results come back in the parts' order. A panic in a part is raised again here.
pub fn map_parts<T: Send, R: Send>(
    mut items: Vec<T>,
    parts: usize,
    f: impl Fn(Vec<T>, usize) -> R + Sync,
) -> Vec<R> {
    let part_len = items.len().div_ceil(parts.max(1)).max(1);
    let mut chunks = Vec::with_capacity(parts);
    while items.len() > part_len {
        let tail = items.split_off(part_len);
        chunks.push(std::mem::replace(&mut items, tail));
    }
    chunks.push(items);
    let mut chunks = chunks
        .into_iter()
        .enumerate()
        .map(|(i, part)| (part, i * part_len));
    let first = chunks.next().unwrap_or_default();
    in_order(first, chunks, &|(part, start)| f(part, start))
}

/// Runs `f` on `parts` consecutive chunks of `items`, each with the index of its first item,
/// a scoped thread per chunk after the first (which runs on the calling thread); the results
/// come back in the chunks' order. A panic in a chunk is raised again here.
pub fn map_chunks<'a, T: Sync, R: Send>(
    items: &'a [T],
    parts: usize,
    f: impl Fn(&'a [T], usize) -> R + Sync,
) -> Vec<R> {
    let chunk_len = items.len().div_ceil(parts.max(1)).max(1);
    let starts = (0..items.len()).step_by(chunk_len).collect();
    in_chunks(items, starts, f)
}

/// [`map_chunks`], the chunks of about equal `weight` rather than of equal length: for items
/// of very different sizes, such as a group of a million members beside groups of ten.
pub fn map_weighted<'a, T: Sync, R: Send>(
    items: &'a [T],
    parts: usize,
    weight: impl Fn(&T) -> usize,
    f: impl Fn(&'a [T], usize) -> R + Sync,
) -> Vec<R> {
    let weights: Vec<usize> = items.iter().map(weight).collect();
    let share = weights.iter().sum::<usize>().div_ceil(parts.max(1)).max(1);
    let mut starts = vec![0];
    let mut before = 0;
    for (i, w) in weights.into_iter().enumerate() {
        if i > 0 && before >= share * starts.len() {
            starts.push(i);
        }
        before += w;
    }
    in_chunks(items, starts, f)
}

/// [`map_chunks`] in as many chunks as `states` (fewer when there are fewer items; none for
/// none), each chunk handed its own state to use (a buffer kept from one call to the next).
pub fn map_chunks_with<'a, T: Sync, S: Send, R: Send>(
    items: &'a [T],
    states: &mut [S],
    f: impl Fn(&'a [T], usize, &mut S) -> R + Sync,
) -> Vec<R> {
    let chunk_len = items.len().div_ceil(states.len().max(1)).max(1);
    let mut parts = items
        .chunks(chunk_len)
        .zip(states.iter_mut())
        .enumerate()
        .map(|(i, (chunk, state))| (chunk, i * chunk_len, state));
    match parts.next() {
        Some(first) => in_order(first, parts, &|(chunk, start, state)| {
            f(chunk, start, state)
        }),
        None => Vec::new(),
    }
}

/// `f` on the chunks of `items` that begin at `starts` (ascending, the first 0), with
/// [`in_order`].
fn in_chunks<'a, T: Sync, R: Send>(
    items: &'a [T],
    starts: Vec<usize>,
    f: impl Fn(&'a [T], usize) -> R + Sync,
) -> Vec<R> {
    if starts.len() < 2 {
        return vec![f(items, 0)];
    }
    let ends = starts.iter().skip(1).copied().chain([items.len()]);
    let mut chunks = starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| (&items[start..end], start));
    let first = chunks.next().unwrap_or((items, 0));
    in_order(first, chunks, &|(chunk, start)| f(chunk, start))
}

/// `f` on `first` on the calling thread and on each of `rest` on a scoped thread of its own;
/// the results in order, a part's panic raised again here.
fn in_order<P: Send, R: Send>(
    first: P,
    rest: impl Iterator<Item = P>,
    f: &(impl Fn(P) -> R + Sync),
) -> Vec<R> {
    std::thread::scope(|scope| {
        let running: Vec<_> = rest.map(|part| scope.spawn(move || f(part))).collect();
        let mut results = vec![f(first)];
        for thread in running {
            match thread.join() {
                Ok(result) => results.push(result),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::{join, map_chunks, map_chunks_with, map_parts, map_weighted};

    #[test]
    fn chunks_come_back_in_order_with_their_first_index() {
        for len in [0usize, 1, 2, 5, 10, 11] {
            let items: Vec<usize> = (0..len).collect();
            for parts in 1..5 {
                let results = map_chunks(&items, parts, |chunk, first| {
                    assert!(chunk.iter().enumerate().all(|(i, &v)| v == first + i));
                    chunk.to_vec()
                });
                assert!(
                    results.len() <= parts.max(1),
                    "{len} items in {parts} parts"
                );
                assert_eq!(results.concat(), items, "{len} in {parts}");
            }
        }
    }

    #[test]
    fn chunks_with_a_state_each_come_back_in_order() {
        for len in [0usize, 1, 2, 5, 10, 11] {
            let items: Vec<usize> = (0..len).collect();
            for parts in 1..5 {
                // Each state counts the chunks it was handed, over two calls.
                let mut states = vec![0usize; parts];
                let mut chunk_count = 0;
                for _ in 0..2 {
                    let chunks = map_chunks_with(&items, &mut states, |chunk, first, seen| {
                        assert!(chunk.iter().enumerate().all(|(i, &v)| v == first + i));
                        *seen += 1;
                        chunk.to_vec()
                    });
                    assert!(chunks.len() <= parts, "{len} items in {parts} parts");
                    assert_eq!(chunks.concat(), items, "{len} in {parts}");
                    chunk_count = chunks.len();
                }
                // The first states, each once per call.
                let expected: Vec<usize> = (0..parts)
                    .map(|i| if i < chunk_count { 2 } else { 0 })
                    .collect();
                assert_eq!(states, expected, "{len} in {parts}");
            }
        }
    }

    #[test]
    fn join_runs_the_second_on_its_own_thread_only_side_by_side() {
        let here = std::thread::current().id();
        let on = || std::thread::current().id();
        assert_eq!(join(false, on, on), (here, here));
        let (a, b) = join(true, on, on);
        assert_eq!(a, here);
        assert_ne!(b, here);
    }

    #[test]
    fn weighted_chunks_carry_about_equal_weight_in_order() {
        // Two heavy items far apart: each chunk carries one and about half the weight.
        let items: Vec<usize> = vec![
            1, 1, 100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 90,
        ];
        let chunks = map_weighted(&items, 2, |&w| w, |chunk, first| (first, chunk.to_vec()));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], (0, items[..7].to_vec()), "102 + 4 of 211");
        assert_eq!(chunks[1], (7, items[7..].to_vec()));
        for len in [0usize, 1, 2, 5, 10] {
            let items: Vec<usize> = (0..len).collect();
            for parts in 1..5 {
                let chunks = map_weighted(
                    &items,
                    parts,
                    |_| 1,
                    |chunk, first| {
                        assert!(chunk.iter().enumerate().all(|(i, &v)| v == first + i));
                        chunk.to_vec()
                    },
                );
                assert!(chunks.len() <= parts.max(1), "{len} items in {parts} parts");
                assert_eq!(chunks.concat(), items, "{len} in {parts}");
            }
        }
        // Weightless items are one chunk.
        assert_eq!(map_weighted(&[1, 2, 3], 3, |_| 0, |c, _| c.len()), [3]);
    }

    #[test]
    fn parts_come_back_in_order_with_their_first_index_and_cover_every_item() {
        for len in [0usize, 1, 2, 5, 10, 11] {
            for parts in 1..5 {
                let items: Vec<usize> = (0..len).collect();
                let results = map_parts(items, parts, |part, first| {
                    assert!(part.iter().enumerate().all(|(i, &v)| v == first + i));
                    part
                });
                assert!(
                    results.len() <= parts.max(1),
                    "{len} items in {parts} parts"
                );
                let joined: Vec<usize> = results.concat();
                assert_eq!(joined, (0..len).collect::<Vec<_>>(), "{len} in {parts}");
            }
        }
    }
}
