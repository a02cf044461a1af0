//! Progress bars, one per phase (LDAP read, ftrack read, directory, rules, diff, apply), for
//! an admin watching a large run at a terminal.
//!
//! They exist only when stderr is a terminal, the output is human and neither `-q` nor `-v`
//! is given: under cron, in a pipe, with `--output json` or with logs asked for, nothing is
//! drawn and every call here is one relaxed atomic load. Counts are pushed from where the
//! work happens ([`advance`] by phase name), so the readers need no handle to a bar.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub const LDAP_READ: &str = "LDAP read";
pub const FTRACK_READ: &str = "ftrack read";
pub const ASSEMBLE: &str = "directory";
pub const RULES: &str = "rules";
pub const DIFF: &str = "diff";
pub const APPLY: &str = "apply";

static ENABLED: AtomicBool = AtomicBool::new(false);

struct Bars {
    multi: MultiProgress,
    live: Mutex<Vec<(&'static str, ProgressBar)>>,
}

fn bars() -> &'static Bars {
    static BARS: OnceLock<Bars> = OnceLock::new();
    BARS.get_or_init(|| Bars {
        multi: MultiProgress::new(),
        live: Mutex::new(Vec::new()),
    })
}

/// Turns the bars on when a person is watching: stderr is a terminal, the output is for
/// people, and no log level was asked for (log lines and bars would fight over the lines).
pub fn enable_on_terminal(json_output: bool, quiet: bool, verbose: bool) {
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let on = !json_output && !quiet && !verbose && !dumb && std::io::stderr().is_terminal();
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One phase on screen; the bar stays, finished, when this is dropped.
#[must_use = "the bar is finished when the phase is dropped"]
pub struct Phase {
    bar: Option<(&'static str, ProgressBar)>,
}

/// Starts a phase: a bar when `total` is known, else a spinner.
pub fn start(name: &'static str, total: Option<u64>) -> Phase {
    match total {
        Some(n) => show(
            name,
            || ProgressBar::new(n),
            "{spinner:.green} {prefix:<12} [{bar:32.cyan/blue}] {human_pos:>9}/{human_len:9} {elapsed:>4}",
        ),
        None => show(
            name,
            ProgressBar::new_spinner,
            "{spinner:.green} {prefix:<12} {elapsed:>4}",
        ),
    }
}

/// Starts a phase of unknown length that counts what it has done (entries, rows).
pub fn start_counting(name: &'static str, unit: &'static str) -> Phase {
    let phase = show(
        name,
        ProgressBar::new_spinner,
        "{spinner:.green} {prefix:<12} {human_pos:>9} {msg} {elapsed:>4}",
    );
    if let Some((_, bar)) = &phase.bar {
        bar.set_message(unit);
    }
    phase
}

/// Nothing is created when bars are off: an unfinished bar draws when it is dropped.
fn show(name: &'static str, bar: impl FnOnce() -> ProgressBar, template: &str) -> Phase {
    if !enabled() {
        return Phase { bar: None };
    }
    let bar = bar();
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let bar = bars().multi.add(bar);
    bar.set_prefix(name);
    bar.enable_steady_tick(Duration::from_millis(120));
    if let Ok(mut live) = bars().live.lock() {
        live.push((name, bar.clone()));
    }
    Phase {
        bar: Some((name, bar)),
    }
}

/// Adds `n` to the running phase called `name` (nothing when bars are off or it is not running).
pub fn advance(name: &'static str, n: u64) {
    if !enabled() {
        return;
    }
    if let Ok(live) = bars().live.lock() {
        if let Some((_, bar)) = live.iter().find(|(p, _)| *p == name) {
            bar.inc(n);
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some((name, bar)) = self.bar.take() {
            bar.finish();
            if let Ok(mut live) = bars().live.lock() {
                live.retain(|(p, _)| *p != name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_a_terminal_and_calls_are_harmless() {
        // Tests run with stderr captured or piped: never a terminal.
        enable_on_terminal(false, false, false);
        assert!(!enabled() || std::io::stderr().is_terminal());
        enable_on_terminal(true, false, false);
        assert!(!enabled());
        let phase = start(RULES, Some(10));
        advance(RULES, 3);
        drop(phase);
    }
}
