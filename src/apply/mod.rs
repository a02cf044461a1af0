//! Apply: carry out a plan through the Session, in batches, recording each operation that
//! landed in a journal (JSON lines).
//!
//! Each batch is atomic on the server. When a batch fails for good, apply stops: what landed
//! is in the journal, ftrack is consistent, and the next run plans the rest. Ids of created
//! entities are fixed by the plan, so a batch whose reply was lost and that is retried is
//! recognised as already done ([`landed`]) instead of being made twice. [`wire`] turns each
//! operation into its API calls; the journal records them.

mod landed;
mod wire;

pub use wire::wire_operations;

use crate::ftrack::{FtrackError, Session};
use crate::plan::Plan;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    pub requests: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("apply stopped after {applied} of {total} operations: {source}; ftrack is consistent, run again to converge")]
    Ftrack {
        applied: usize,
        total: usize,
        #[source]
        source: FtrackError,
    },
    #[error("cannot write the journal {path}: {cause}")]
    Journal {
        path: String,
        /// Operations that landed (a batch is sent before its journal lines are written).
        applied: usize,
        cause: std::io::Error,
    },
}

impl ApplyError {
    /// How many operations ftrack had confirmed when the apply stopped.
    pub fn landed(&self) -> usize {
        match self {
            ApplyError::Ftrack { applied, .. } => *applied,
            ApplyError::Journal { applied, .. } => *applied,
        }
    }
}

/// Applies `plan` in batches of whole operations (an operation's wire calls never straddle
/// two requests), appending one journal line per applied operation.
pub async fn apply(
    plan: &Plan,
    session: &Session,
    batch_size: usize,
    journal: Option<&Path>,
) -> Result<ApplyReport, ApplyError> {
    // Personal data: created 0600, and never through a link another user planted.
    let mut journal_file =
        match journal {
            Some(path) => Some(crate::private_files::open_append(path).map_err(|cause| {
                ApplyError::Journal {
                    path: path.display().to_string(),
                    applied: 0,
                    cause,
                }
            })?),
            None => None,
        };
    let mut lines = Vec::new();
    let total = plan.operations.len();
    let mut report = ApplyReport::default();
    let _phase = crate::progress::start(crate::progress::APPLY, Some(total as u64));
    let mut start = 0;
    while start < total {
        // Fill a batch with whole operations up to batch_size wire calls (at least one op).
        let mut end = start;
        let mut wire = Vec::new();
        // Where each operation's calls start in `wire`, for the journal.
        let mut starts = Vec::new();
        while end < total {
            let calls = wire_operations(&plan.operations[end]);
            if !wire.is_empty() && wire.len() + calls.len() > batch_size {
                break;
            }
            starts.push(wire.len());
            wire.extend(calls);
            end += 1;
        }
        starts.push(wire.len());
        let result = session.call_one_request(&wire).await;
        report.requests += 1;
        if let Err(error) = result {
            if !landed::already_landed(session, &wire).await {
                return Err(ApplyError::Ftrack {
                    applied: report.applied,
                    total,
                    source: error,
                });
            }
            tracing::info!("a batch failed ({error}), but ftrack shows every change of it (an earlier attempt whose reply was lost had landed); continuing");
        }
        for (i, op) in plan.operations[start..end].iter().enumerate() {
            report.applied += 1;
            if journal_file.is_some() {
                let line = json!({
                    "time": crate::clock::now_rfc3339(),
                    "kind": op.kind,
                    "target": op.target,
                    "group": op.group,
                    "role": op.role,
                    "scope": op.scope,
                    "status": "applied",
                    "calls": &wire[starts[i]..starts[i + 1]],
                });
                serde_json::to_writer(&mut lines, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| lines.write_all(b"\n"))
                    .map_err(|cause| ApplyError::Journal {
                        path: journal.map(|p| p.display().to_string()).unwrap_or_default(),
                        applied: end,
                        cause,
                    })?;
            }
        }
        // One write and one flush to disk per batch: the journal says what landed even when
        // the process is killed during the next batch.
        if let Some(file) = journal_file.as_mut() {
            file.write_all(&lines)
                .and_then(|()| file.sync_data())
                .map_err(|cause| ApplyError::Journal {
                    path: journal.map(|p| p.display().to_string()).unwrap_or_default(),
                    applied: end,
                    cause,
                })?;
            lines.clear();
        }
        crate::progress::advance(crate::progress::APPLY, (end - start) as u64);
        start = end;
    }
    Ok(report)
}
