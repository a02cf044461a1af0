//! Fault injection: latency, HTTP 500 every Nth request (before or after executing it),
//! HTTP 429 with `Retry-After`, and "every request after the Nth fails" — settable at
//! start-up and at runtime, so clients can prove their retry and resume logic.

use serde::{Deserialize, Serialize};

/// The faults to inject into `POST /api`. Request numbers count from when the faults
/// were (last) set, starting at 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before answering each request, in milliseconds.
    pub latency_ms: u64,
    /// Answer HTTP 500 to every Nth request.
    pub error_every_nth: Option<u64>,
    /// With `error_every_nth`: execute the batch first (changes are kept), then answer
    /// 500 — the "commit succeeded but the reply was lost" case.
    pub error_after_execute: bool,
    /// Answer HTTP 429 with `Retry-After: retry_after_secs` to every Nth request.
    pub rate_limit_every_nth: Option<u64>,
    /// Seconds sent in `Retry-After` with injected 429s.
    pub retry_after_secs: u64,
    /// Every request after the Nth fails with HTTP 500 without executing (an apply
    /// dying midway).
    pub fail_after_requests: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            error_every_nth: None,
            error_after_execute: false,
            rate_limit_every_nth: None,
            retry_after_secs: 1,
            fail_after_requests: None,
        }
    }
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// Fail with 500 without executing.
    FailBefore,
    /// Execute, then answer 500.
    FailAfter,
    /// Answer 429 with this Retry-After.
    RateLimit(u64),
}

/// Faults plus the request count they are evaluated against.
#[derive(Debug, Clone, Default)]
pub struct FaultState {
    pub faults: Faults,
    seen: u64,
}

impl FaultState {
    pub fn new(faults: Faults) -> FaultState {
        FaultState { faults, seen: 0 }
    }

    /// Replace the faults and restart request numbering.
    pub fn set(&mut self, faults: Faults) {
        *self = FaultState::new(faults);
    }

    /// Decide the next request's fate.
    pub fn decide(&mut self) -> Verdict {
        self.seen += 1;
        let n = self.seen;
        let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
        let f = &self.faults;
        if f.fail_after_requests.is_some_and(|k| n > k) {
            Verdict::FailBefore
        } else if every(f.rate_limit_every_nth) {
            Verdict::RateLimit(f.retry_after_secs)
        } else if every(f.error_every_nth) {
            if f.error_after_execute {
                Verdict::FailAfter
            } else {
                Verdict::FailBefore
            }
        } else {
            Verdict::Proceed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let mut s = FaultState::new(Faults {
            error_every_nth: Some(3),
            ..Faults::default()
        });
        let v: Vec<Verdict> = (0..6).map(|_| s.decide()).collect();
        assert_eq!(v[2], Verdict::FailBefore);
        assert_eq!(v[5], Verdict::FailBefore);
        assert_eq!(v[0], Verdict::Proceed);

        let mut s = FaultState::new(Faults {
            fail_after_requests: Some(2),
            rate_limit_every_nth: Some(1),
            retry_after_secs: 7,
            ..Faults::default()
        });
        assert_eq!(s.decide(), Verdict::RateLimit(7));
        assert_eq!(s.decide(), Verdict::RateLimit(7));
        assert_eq!(s.decide(), Verdict::FailBefore);
        s.set(Faults::none());
        assert_eq!(s.decide(), Verdict::Proceed);
    }
}
