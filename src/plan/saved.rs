//! A plan saved by `plan --out` for `apply --plan`: bound to fingerprints of what it was
//! computed from, so a plan reviewed on Monday is not applied to Tuesday's ftrack.

use super::Plan;
use crate::ftrack::FtrackSnapshot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

/// The SHA-256 of an ftrack snapshot.
pub fn fingerprint(ftrack: &FtrackSnapshot) -> String {
    let bytes = serde_json::to_vec(ftrack).unwrap_or_default();
    format!("{:x}", Sha256::digest(&bytes))
}

impl SavedPlan {
    pub fn new(ftrack: &FtrackSnapshot, modules_sha256: Vec<String>, plan: &Plan) -> SavedPlan {
        SavedPlan {
            format: 1,
            ftrack_sha256: fingerprint(ftrack),
            modules_sha256,
            plan: plan.clone(),
        }
    }

    /// Reads a saved plan; the error says what is wrong with the file.
    pub fn read(path: &Path) -> Result<SavedPlan, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the saved plan {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a plan saved by `ldap2ftrack plan --out`: {e}",
                path.display()
            )
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
