//! Users that left: carry out the rules' verdict (disable, or keep) and record the date a
//! user was first found missing, so grace periods need no local state.

use super::{Planner, DISABLED_BY_SYNC_KEY, MISSING_SINCE_KEY};
use crate::ftrack::snapshot::FtrackUser;
use crate::plan::{Operation, OperationKind};
use crate::rules::{departure, Verdict};

impl Planner<'_> {
    /// Plans what happens to a departed user, given the verdict and the rule that settled it.
    pub(super) fn departed(
        &mut self,
        user: &FtrackUser,
        ldap_disabled: bool,
        verdict: &Verdict,
        by: &str,
    ) {
        let today = &self.settings.today;
        let mut op = match verdict {
            Verdict::Disable(reason) if user.is_active => {
                let mut op = Operation::new(
                    OperationKind::DisableUser,
                    user.username.as_str(),
                    format!("{by}: {reason}"),
                );
                op.set("is_active", Some("true".into()), Some("false".into()));
                op.set_metadata(DISABLED_BY_SYNC_KEY, None, Some(today.clone()));
                op
            }
            Verdict::Disable(_) => Operation::new(
                OperationKind::UpdateUser,
                user.username.as_str(),
                format!("{}; already disabled", departure(ldap_disabled)),
            ),
            Verdict::Keep(reason) => Operation::new(
                OperationKind::UpdateUser,
                user.username.as_str(),
                format!("{by}: kept: {reason}"),
            ),
        };
        if !user.metadata.contains_key(MISSING_SINCE_KEY) {
            op.set_metadata(MISSING_SINCE_KEY, None, Some(today.clone()));
        }
        if op.kind == OperationKind::UpdateUser && op.metadata.is_empty() {
            return;
        }
        op.user_id = Some(user.id.as_str().into());
        self.ops.push(Box::new(op));
    }
}
