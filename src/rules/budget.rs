//! A rule module's run budget: the wall-clock time all its hook calls of one run may take
//! together (`[[rules]] max_run_seconds`). Per-call fuel stops one runaway call; this stops a
//! module that is merely slow on every entry — 10 ms each is over a quarter of an hour at
//! 100,000 users — before a cron run overlaps the next one.
//!
//! One budget is shared by the module's instances on every worker thread. Each call's epoch
//! deadline is cut to what is left of it ([`RunBudget::remaining`]), so a run ends on time
//! even when one call would run long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug)]
pub struct RunBudget {
    limit: Duration,
    used_nanos: AtomicU64,
    calls: AtomicU64,
    /// The hook of the call that went over the budget.
    over_in: OnceLock<&'static str>,
}

impl RunBudget {
    pub fn new(limit: Duration) -> RunBudget {
        RunBudget {
            limit,
            used_nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            over_in: OnceLock::new(),
        }
    }

    /// Records one call of `hook` that took `elapsed`.
    pub fn spend(&self, hook: &'static str, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let before = self.used_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        if Duration::from_nanos(before.saturating_add(nanos)) > self.limit {
            let _ = self.over_in.set(hook);
        }
    }

    /// What is left of the budget (zero once it is used up).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(Duration::from_nanos(
            self.used_nanos.load(Ordering::Relaxed),
        ))
    }

    /// Why the module may not be called again this run, once it has used its budget.
    pub fn exceeded(&self, module: &str) -> Option<String> {
        let used = Duration::from_nanos(self.used_nanos.load(Ordering::Relaxed));
        if used <= self.limit {
            return None;
        }
        let calls = self.calls.load(Ordering::Relaxed).max(1);
        let per_call = used.as_secs_f64() * 1000.0 / calls as f64;
        let hook = self.over_in.get().copied().unwrap_or("a hook");
        Some(format!(
            "rule module `{module}` used {:.1} s, more than its run budget (max_run_seconds = {}), \
             over {calls} hook calls: {per_call:.2} ms per call; it was stopped in `{hook}`. The \
             run stops before anything is written; make the module cheaper, or raise \
             `max_run_seconds` in its [[rules]] entry",
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
        budget.spend("transform-user", Duration::from_millis(600));
        assert_eq!(budget.exceeded("slow"), None);
        assert_eq!(budget.remaining(), Duration::from_millis(400));
        budget.spend("map-groups", Duration::from_millis(600));
        assert_eq!(budget.remaining(), Duration::ZERO);
        let why = budget.exceeded("slow").unwrap();
        assert!(why.contains("stopped in `map-groups`"), "{why}");
        assert!(why.starts_with("rule module `slow` used 1.2 s"), "{why}");
        assert!(why.contains("max_run_seconds = 1"), "{why}");
        assert!(
            why.contains("over 2 hook calls: 600.00 ms per call"),
            "{why}"
        );
        budget.spend("deprovision", Duration::from_millis(1));
        assert!(budget.exceeded("slow").unwrap().contains("`map-groups`"));
    }
}
