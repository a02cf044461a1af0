//! A rule module's run budget: the wall-clock time all its hook calls of one run may take
//! together (`[[rules]] max_run_seconds`). Per-call fuel stops one runaway call; this stops a
//! module that is merely slow on every entry — 10 ms each is over a quarter of an hour at
//! 100,000 users — before a cron run overlaps the next one.
//!
//! One budget is shared by the module's instances on every worker thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The run's default `max_run_seconds` per module.
pub const DEFAULT_MAX_RUN_SECONDS: u64 = 300;

#[derive(Debug)]
pub struct RunBudget {
    limit: Duration,
    used_nanos: AtomicU64,
    calls: AtomicU64,
}

impl RunBudget {
    pub fn new(limit: Duration) -> RunBudget {
        RunBudget {
            limit,
            used_nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Records one hook call that took `elapsed`.
    pub fn spend(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.used_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Why the module may not be called again this run, once it has used its budget.
    pub fn exceeded(&self, module: &str) -> Option<String> {
        let used = Duration::from_nanos(self.used_nanos.load(Ordering::Relaxed));
        if used <= self.limit {
            return None;
        }
        let calls = self.calls.load(Ordering::Relaxed).max(1);
        let per_call = used.as_secs_f64() * 1000.0 / calls as f64;
        Some(format!(
            "rule module `{module}` used {:.1} s, more than its run budget (max_run_seconds = {}), \
             over {calls} hook calls: {per_call:.2} ms per call. The run stops before anything is \
             written; make the module cheaper, or raise `max_run_seconds` in its [[rules]] entry",
            used.as_secs_f64(),
            self.limit.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeded_names_the_module_and_its_cost_per_call() {
        let budget = RunBudget::new(Duration::from_secs(1));
        budget.spend(Duration::from_millis(600));
        assert_eq!(budget.exceeded("slow"), None);
        budget.spend(Duration::from_millis(600));
        let why = budget.exceeded("slow").unwrap();
        assert!(why.starts_with("rule module `slow` used 1.2 s"), "{why}");
        assert!(why.contains("max_run_seconds = 1"), "{why}");
        assert!(
            why.contains("over 2 hook calls: 600.00 ms per call"),
            "{why}"
        );
    }
}
