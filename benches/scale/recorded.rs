//! The regression guard: the figures of a run recorded in `benches/scale/recorded.json`
//! (with `--record`), and every later run on the same machine compared with them, failing
//! loudly when a figure is more than 25% worse, so that a slowdown such as the journal's
//! 3.3 million `write` calls cannot land unnoticed again.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How much worse than recorded a figure may get before the bench fails.
pub const TOLERANCE: f64 = 1.25;

/// Figures that are too small to compare by ratio (a few milliseconds jitter by more than
/// 25%): below these floors a figure is not judged.
fn floor(name: &str) -> f64 {
    if name.ends_with("_wall_s") {
        0.25
    } else if name.ends_with("_rss_mb") {
        50.0
    } else {
        0.0
    }
}

pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scale/recorded.json")
}

/// The machine the figures belong to: cores, CPU model and memory (the load is not part
/// of it).
pub fn machine_key() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {model}, {mem_gb:.0} GiB RAM")
}

/// The machine and its load now, for the report.
pub fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{}; load average at start {}",
        machine_key(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn read() -> Value {
    std::fs::read_to_string(path())
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}))
}

/// Figures recorded on this machine.
pub fn recorded() -> BTreeMap<String, f64> {
    read()[machine_key()]["figures"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Records `figures` for this machine (keeping other machines' and other sizes' figures).
/// `memory_only` figures keep the commit of the other figures and name their own.
pub fn record(figures: &BTreeMap<String, f64>, commit: &str, memory_only: bool) {
    let mut all = read();
    let key = machine_key();
    let mut merged = recorded();
    merged.extend(
        figures
            .iter()
            .map(|(k, v)| (k.clone(), (v * 1000.0).round() / 1000.0)),
    );
    let mut entry = all.get(&key).cloned().unwrap_or_else(|| json!({}));
    let commit_key = if memory_only {
        "memory_commit"
    } else {
        "commit"
    };
    entry[commit_key] = json!(commit);
    entry["figures"] = json!(merged);
    all[&key] = entry;
    let text = serde_json::to_string_pretty(&all).expect("figures are JSON");
    std::fs::write(path(), text + "\n").expect("write benches/scale/recorded.json");
    eprintln!("recorded {} figures in {}", figures.len(), path().display());
}

/// One comparison with the recorded figure: `(passed, line)`.
pub fn compare(name: &str, now: f64, recorded: f64) -> Option<(bool, String)> {
    if now.max(recorded) < floor(name) {
        return None;
    }
    let ok = now <= recorded * TOLERANCE;
    Some((
        ok,
        format!(
            "regression guard {name}: {now:.3} now, {recorded:.3} recorded ({:+.0}%, limit +{:.0}%)",
            (now / recorded.max(1e-9) - 1.0) * 100.0,
            (TOLERANCE - 1.0) * 100.0
        ),
    ))
}
