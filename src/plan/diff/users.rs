//! The user itself: create it, update the fields that differ (adopting it on first match),
//! or enable it again when it returns and ldap2ftrack had disabled it.

use super::matching::Matched;
use super::{planned_id, Planner, ANCHOR_KEY, DISABLED_BY_SYNC_KEY, MISSING_SINCE_KEY};
use crate::caseless::lowercase;
use crate::ftrack::snapshot::FtrackUser;
use crate::plan::{Name, Operation, OperationKind};
use crate::rules::pipeline::{DesiredUser, Reasons, SkippedEntry};
use crate::rules::ReasonKey;

const USERNAME: ReasonKey = ReasonKey::Field("username");

/// A user's ftrack id, as its operations carry it.
pub(super) enum UserId<'m> {
    /// Chosen for a user the plan creates, shared already.
    Planned(Name),
    /// The user's id in ftrack, shared once an operation carries it: most users of a run
    /// need none.
    Current(&'m str),
}

impl UserId<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            UserId::Planned(id) => id,
            UserId::Current(id) => id,
        }
    }
}

impl Planner<'_> {
    /// Plans the user's own changes. Returns its ftrack id (planned when it is being
    /// created), or `None` when its access is not to be touched (disabled by someone else).
    pub(super) fn user<'m>(
        &mut self,
        matched: &Matched<'m>,
        reasons: &Reasons,
    ) -> Option<UserId<'m>> {
        let user = matched.user;
        let username = user.fields.username.trim();
        let Some(current) = matched.current else {
            return Some(UserId::Planned(self.create(matched, reasons)));
        };
        let mut update = self.update(user, reasons, current, &matched.anchor);
        if !current.is_active {
            if !current.metadata.contains_key(DISABLED_BY_SYNC_KEY) {
                self.plan.notes.push(format!(
                    "`{}` is disabled in ftrack by someone else; ldap2ftrack leaves that to them",
                    current.username
                ));
                self.ops.extend(update.map(Box::new));
                return None;
            }
            let mut op = Operation::new(
                OperationKind::EnableUser,
                username,
                format!("back in LDAP and enabled there ({})", user.entry.dn),
            );
            op.user_id = Some(self.names.get(&current.id));
            op.set("is_active", Some("false".into()), Some("true".into()));
            op.set_metadata(
                DISABLED_BY_SYNC_KEY,
                current.metadata.get(DISABLED_BY_SYNC_KEY).cloned(),
                None,
            );
            // Clearing "missing since" belongs to the return, not to a separate update.
            if let Some(u) = update.as_mut() {
                if let Some(change) = u.metadata.remove(MISSING_SINCE_KEY) {
                    op.metadata.insert(MISSING_SINCE_KEY.into(), change);
                }
                if u.changes.is_empty() && u.metadata.is_empty() {
                    update = None;
                }
            }
            self.ops.push(Box::new(op));
        }
        self.ops.extend(update.map(Box::new));
        Some(UserId::Current(&current.id))
    }

    /// Plans the user's creation; returns the id chosen for it.
    fn create(&mut self, matched: &Matched, reasons: &Reasons) -> Name {
        let user = matched.user;
        // The username's reason, and each other field's where another stage set it (a
        // module that only fills in the e-mail is named for the e-mail).
        let mut why = vec![reasons.of(&USERNAME)];
        let mut op = Operation::new(OperationKind::CreateUser, user.fields.username.trim(), "");
        let user_id: Name = planned_id("user", &matched.anchor).into();
        op.user_id = Some(user_id.clone());
        for (field, value) in user_fields(user) {
            if let Some(v) = value {
                op.set(field, None, Some(v.to_string()));
                let proposal = ReasonKey::Field(field);
                if !reasons.same_stage(&proposal, &USERNAME) {
                    why.push(format!("{field}: {}", reasons.of(&proposal)));
                }
            }
        }
        op.reason = match why.as_slice() {
            [only] => only.as_str().into(),
            _ => why.join("; ").into(),
        };
        op.set_metadata(ANCHOR_KEY, None, Some(matched.anchor.clone()));
        self.ops.push(Box::new(op));
        user_id
    }

    fn update(
        &mut self,
        user: &DesiredUser,
        reasons: &Reasons,
        current: &FtrackUser,
        anchor: &str,
    ) -> Option<Operation> {
        let mut op = Operation::new(OperationKind::UpdateUser, user.fields.username.trim(), "");
        op.user_id = Some(self.names.get(&current.id));
        let mut why = Vec::new();
        for (field, desired) in user_fields(user) {
            let Some(desired) = desired else {
                continue; // LDAP has no value: leave ftrack's as it is
            };
            let now = match field {
                "username" => Some(current.username.as_str()),
                "email" => current.email.as_deref(),
                "first_name" => current.first_name.as_deref(),
                _ => current.last_name.as_deref(),
            };
            if now == Some(desired) {
                continue;
            }
            if field == "username" {
                let taken = self
                    .index
                    .user_by_name(&lowercase(desired))
                    .is_some_and(|other| other.id != current.id);
                if taken {
                    self.plan.skipped.push(SkippedEntry::of(&user.entry, format!(
                        "renaming `{}` to `{desired}` is impossible: another ftrack user has that username",
                        current.username
                    )));
                    continue;
                }
                op.target = current.username.as_str().into();
            }
            op.set(field, now.map(str::to_string), Some(desired.to_string()));
            why.push(format!("{field}: {}", reasons.of(&ReasonKey::Field(field))));
        }
        if current.metadata.get(ANCHOR_KEY).map(String::as_str) != Some(anchor) {
            op.set_metadata(
                ANCHOR_KEY,
                current.metadata.get(ANCHOR_KEY).cloned(),
                Some(anchor.to_string()),
            );
            why.push(format!("adopted: matched by username to {}", user.entry.dn));
        }
        if let Some(since) = current.metadata.get(MISSING_SINCE_KEY) {
            op.set_metadata(MISSING_SINCE_KEY, Some(since.clone()), None);
            why.push(format!("back in LDAP ({})", user.entry.dn));
        }
        if op.changes.is_empty() && op.metadata.is_empty() {
            return None;
        }
        op.reason = why.join("; ").into();
        Some(op)
    }
}

fn user_fields(user: &DesiredUser) -> [(&'static str, Option<&str>); 4] {
    [
        ("username", Some(user.fields.username.trim())),
        ("email", user.fields.email.as_deref()),
        ("first_name", user.fields.first_name.as_deref()),
        ("last_name", user.fields.last_name.as_deref()),
    ]
}
