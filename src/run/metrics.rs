//! What one run did, for the log line at its end and for the optional Prometheus textfile
//! (`[run] metrics_file`, read by node_exporter's textfile collector): counts by operation
//! kind, the time of each phase, the guards' margins, and when the sync last succeeded.

use crate::config::GuardSettings;
use crate::plan::Plan;
use crate::rules::pipeline::SkipCause;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Filled in as the run goes; written out however it ends.
#[derive(Debug, Default)]
pub struct RunRecord {
    pub command: &'static str,
    /// (phase, seconds), in the order they ran.
    pub phases: Vec<(&'static str, f64)>,
    /// Operations planned, by kind.
    pub planned: Vec<(&'static str, usize)>,
    pub applied: usize,
    /// (guard key, how many more changes it would have allowed; negative = exceeded).
    pub guard_margins: Vec<(&'static str, i64)>,
    /// Directory entries left out of the run, by cause (`failed`, `invalid`, `excluded`).
    pub skipped: Vec<(&'static str, usize)>,
    /// Whether the run's event reached ftrack's event hub (`None`: none was to be sent).
    pub event_published: Option<bool>,
}

impl RunRecord {
    pub fn new(command: &'static str) -> RunRecord {
        RunRecord {
            command,
            ..RunRecord::default()
        }
    }

    /// Times `f` as `phase`.
    pub fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        self.phase(phase, start.elapsed());
        value
    }

    pub fn phase(&mut self, phase: &'static str, elapsed: Duration) {
        self.phases.push((phase, elapsed.as_secs_f64()));
    }

    /// Records the plan's counts and how close it came to each guard.
    pub fn plan(&mut self, plan: &Plan, guards: &GuardSettings, directory_users: usize) {
        self.skipped = [
            ("failed", SkipCause::Failed),
            ("invalid", SkipCause::Invalid),
            ("excluded", SkipCause::Excluded),
        ]
        .into_iter()
        .map(|(label, cause)| {
            (
                label,
                plan.skipped.iter().filter(|s| s.cause == cause).count(),
            )
        })
        .collect();
        self.planned = plan.summary().into_iter().collect();
        // What each guard allows at this run's size (a count floor included) less what the
        // plan has: the same figures the guard itself decides on.
        self.guard_margins = crate::plan::guard::figures(plan, guards, directory_users)
            .iter()
            .map(|f| {
                let allowed = i64::try_from(f.allowance.allowed).unwrap_or(i64::MAX);
                (f.key, allowed - f.planned as i64)
            })
            .collect();
    }

    /// The textfile, keeping the previous last-success time when this run failed.
    pub fn render(&self, exit_code: u8, previous: Option<&str>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last_success = if exit_code == 0 || exit_code == 4 {
            Some(now)
        } else {
            previous.and_then(previous_last_success)
        };
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let command = format!("{{command=\"{}\"}}", self.command);
        metric(
            "ldap2ftrack_exit_code",
            "gauge",
            "Exit code of the last run (0 ok, 1 runtime, 2 config, 3 guard, 4 pending changes).",
            &[(command.clone(), exit_code.to_string())],
        );
        metric(
            "ldap2ftrack_last_run_timestamp_seconds",
            "gauge",
            "When the last run ended (Unix time).",
            &[(command.clone(), now.to_string())],
        );
        if let Some(t) = last_success {
            metric(
                "ldap2ftrack_last_success_timestamp_seconds",
                "gauge",
                "When a run last succeeded (Unix time).",
                &[(String::new(), t.to_string())],
            );
        }
        let labelled = |pairs: &[(&str, String)], label: &str| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), v.clone()))
                .collect()
        };
        let phases: Vec<(&str, String)> = self
            .phases
            .iter()
            .map(|(p, s)| (*p, format!("{s:.6}")))
            .collect();
        metric(
            "ldap2ftrack_phase_duration_seconds",
            "gauge",
            "Duration of each phase of the last run.",
            &labelled(&phases, "phase"),
        );
        let planned: Vec<(&str, String)> = self
            .planned
            .iter()
            .map(|(k, n)| (*k, n.to_string()))
            .collect();
        metric(
            "ldap2ftrack_planned_operations",
            "gauge",
            "Operations planned by the last run, by kind.",
            &labelled(&planned, "kind"),
        );
        metric(
            "ldap2ftrack_applied_operations",
            "gauge",
            "Operations applied by the last run.",
            &[(String::new(), self.applied.to_string())],
        );
        if let Some(published) = self.event_published {
            metric(
                "ldap2ftrack_event_published",
                "gauge",
                "Whether the last run's sync event reached ftrack's event hub (1) or not (0).",
                &[(String::new(), u8::from(published).to_string())],
            );
        }
        let ldap_pages = crate::directory::ldap::pages_read();
        if ldap_pages > 0 {
            metric(
                "ldap2ftrack_read_pages",
                "gauge",
                "Result pages the last run read from the LDAP server (for sizing and benchmarks).",
                &labelled(&[("ldap", ldap_pages.to_string())], "source"),
            );
        }
        let skipped: Vec<(&str, String)> = self
            .skipped
            .iter()
            .map(|(c, n)| (*c, n.to_string()))
            .collect();
        metric(
            "ldap2ftrack_skipped_entries",
            "gauge",
            "Directory entries the last run left out, by cause (failed: a rule failed on it; invalid: it cannot go to ftrack as it is; excluded: a rule chose to leave it out).",
            &labelled(&skipped, "cause"),
        );
        let margins: Vec<(&str, String)> = self
            .guard_margins
            .iter()
            .map(|(g, m)| (*g, m.to_string()))
            .collect();
        metric(
            "ldap2ftrack_guard_margin",
            "gauge",
            "Changes each guard would still allow (negative: exceeded).",
            &labelled(&margins, "guard"),
        );
        out
    }

    /// Writes the textfile atomically (a scraper never sees half a file).
    pub fn write(&self, path: &Path, exit_code: u8) -> std::io::Result<()> {
        let previous = std::fs::read_to_string(path).ok();
        let text = self.render(exit_code, previous.as_deref());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // A temporary file of a unique name, created 0600 and never through a link: renaming
        // it over the textfile replaces a planted symbolic link instead of writing through it.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".ldap2ftrack-metrics")
            .tempfile_in(dir)?;
        std::io::Write::write_all(&mut tmp.as_file(), text.as_bytes())?;
        // Scrapers (node_exporter) run as another user: the metrics are meant to be read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.persist(path).map(drop).map_err(|e| e.error)
    }
}

fn previous_last_success(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("ldap2ftrack_last_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let textfile = dir.path().join("ldap2ftrack.prom");
        std::os::unix::fs::symlink(&victim, &textfile).unwrap();
        RunRecord::new("plan").write(&textfile, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(&textfile).unwrap();
        assert!(meta.file_type().is_file());
        assert!(std::fs::read_to_string(&textfile)
            .unwrap()
            .contains("ldap2ftrack_exit_code"));
        // Two writes leave no temporary files behind.
        RunRecord::new("plan").write(&textfile, 0).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn textfile_keeps_the_last_success_across_a_failure() {
        let mut record = RunRecord::new("apply");
        record.phase("ldap_read", Duration::from_millis(1500));
        record.plan(&Plan::default(), &GuardSettings::default(), 0);
        crate::directory::ldap::count_pages(1);
        let ok = record.render(0, None);
        assert!(
            ok.contains("ldap2ftrack_read_pages{source=\"ldap\"} "),
            "{ok}"
        );
        assert!(
            ok.contains("ldap2ftrack_phase_duration_seconds{phase=\"ldap_read\"} 1.500000"),
            "{ok}"
        );
        assert!(ok.contains("ldap2ftrack_planned_operations{kind=\"disable_user\"} 0"));
        // An empty plan of nothing: the count floors are the whole margin.
        for (guard, margin) in [
            ("max_disable", 3),
            ("max_membership_removals", 4),
            ("max_role_revocations", 4),
            ("max_skipped", 3),
        ] {
            let line = format!("ldap2ftrack_guard_margin{{guard=\"{guard}\"}} {margin}\n");
            assert!(ok.contains(&line), "{line} missing from {ok}");
        }
        let failed = record.render(
            1,
            Some("ldap2ftrack_last_success_timestamp_seconds 1700000000\n"),
        );
        assert!(
            failed.contains("ldap2ftrack_last_success_timestamp_seconds 1700000000"),
            "{failed}"
        );
        assert!(failed.contains("ldap2ftrack_exit_code{command=\"apply\"} 1"));
        assert!(!record.render(1, None).contains("last_success"));
    }
}
