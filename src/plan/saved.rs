//! A plan saved by `plan --out` for `apply --plan`: bound to fingerprints of what it was
//! computed from, so a plan reviewed on Monday is not applied to Tuesday's ftrack.

use super::Plan;
use crate::ftrack::FtrackSnapshot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

/// The plan and the fingerprints of its inputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    /// SHA-256 of the ftrack snapshot the plan was computed from.
    pub ftrack_sha256: String,
    /// SHA-256 of each rule module, in order.
    pub modules_sha256: Vec<String>,
    pub plan: Plan,
}

/// The SHA-256 of an ftrack snapshot (its JSON encoding, hashed as it is produced: at
/// 100,000 users the encoding would be a 100 MB string).
pub fn fingerprint(ftrack: &FtrackSnapshot) -> String {
    let mut hasher = Sha256::new();
    // Writing into a hasher cannot fail, and the snapshot's maps have string keys.
    let _ = serde_json::to_writer(&mut hasher, ftrack);
    format!("{:x}", hasher.finalize())
}

/// What a plan shown to an administrator is bound to until they confirm it (the
/// `ldap2ftrack.apply` action): ftrack as it was read, the module pins and the operations, as
/// one SHA-256. Confirming applies only when a fresh plan gives the same binding.
pub fn binding(ftrack: &FtrackSnapshot, modules_sha256: &[String], plan: &Plan) -> String {
    let mut hasher = Sha256::new();
    hasher.update(fingerprint(ftrack).as_bytes());
    for pin in modules_sha256 {
        hasher.update(b"\n");
        hasher.update(pin.as_bytes());
    }
    hasher.update(b"\n");
    // Writing into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, &plan.operations);
    format!("{:x}", hasher.finalize())
}

/// The file as `write` produces it: the saved plan's fields around a borrowed plan.
#[derive(Serialize)]
struct SavedPlanRef<'a> {
    format: u32,
    ftrack_sha256: String,
    modules_sha256: &'a [String],
    plan: &'a Plan,
}

impl SavedPlan {
    /// Saves `plan`, bound to the fingerprints of its inputs, to `path`: streamed, the plan
    /// is not copied.
    pub fn write(
        path: &Path,
        ftrack: &FtrackSnapshot,
        modules_sha256: &[String],
        plan: &Plan,
    ) -> Result<(), String> {
        let failed =
            |e: &dyn std::fmt::Display| format!("cannot write the plan to {}: {e}", path.display());
        let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
        let mut out = BufWriter::new(file);
        let saved = SavedPlanRef {
            format: 1,
            ftrack_sha256: fingerprint(ftrack),
            modules_sha256,
            plan,
        };
        serde_json::to_writer_pretty(&mut out, &saved).map_err(|e| failed(&e))?;
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(|e| failed(&e))
    }

    /// Reads a saved plan, streaming from the file; the error says what is wrong with it.
    pub fn read(path: &Path) -> Result<SavedPlan, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read the saved plan {}: {e}", path.display()))?;
        serde_json::from_reader(BufReader::new(file)).map_err(|e| {
            if e.is_io() {
                format!("cannot read the saved plan {}: {e}", path.display())
            } else {
                format!(
                    "{} is not a plan saved by `ldap2ftrack plan --out`: {e}",
                    path.display()
                )
            }
        })
    }

    /// Why the plan may no longer be applied: ftrack or the rule modules changed since, or
    /// the live inputs now give a different plan (`live`). `None` when it still holds.
    pub fn drift(
        &self,
        ftrack: &FtrackSnapshot,
        modules_sha256: &[String],
        live: &Plan,
    ) -> Option<&'static str> {
        if self.ftrack_sha256 != fingerprint(ftrack) {
            Some("ftrack changed since the plan was made")
        } else if self.modules_sha256 != modules_sha256 {
            Some("the rule modules changed since the plan was made")
        } else if self.plan.operations != live.operations {
            Some("the directory changed since the plan was made")
        } else {
            None
        }
    }
}
