//! Running the stages over the directory: each user through `transform-user` and
//! `map-groups` in order, with a record of which stage proposed what (the reasons shown in
//! the plan), then the checks that keep bad data out of ftrack (empty usernames, invalid
//! e-mail addresses, two entries claiming one username).

use super::{
    Access, DepartedUser, GroupRef, OnRuleError, ReasonKey, RuleEntry, RuleError, Stage,
    UserDecision, UserFields, Verdict,
};
use crate::directory::{DirectorySnapshot, DirectoryUser, Value};
use arcstr::ArcStr;
use base64::Engine;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The stages, in order: built-in mappings first, then the rule modules.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    /// Builds another, independent set of the same stages for a second worker thread.
    workers: Option<StageFactory>,
}

/// Makes a fresh set of the pipeline's stages (one instance of each module per worker).
pub type StageFactory = Box<dyn Fn() -> Result<Vec<Box<dyn Stage>>, String> + Send + Sync>;

/// Users evaluated between two progress updates.
const PROGRESS_STEP: usize = 1024;

/// What the rules want for one directory user.
#[derive(Debug, Clone)]
pub struct DesiredUser {
    /// The entry the rules saw. For an enabled user only its identity is kept (dn, stable
    /// id, disabled); attributes and groups, which the rules have used by now, are dropped
    /// as each user is evaluated — at 100,000 users they would be most of a run's memory. A
    /// user disabled in LDAP keeps the whole entry for the `deprovision` hook.
    pub entry: RuleEntry,
    /// Where the entry is in [`DirectorySnapshot::users`] (to see it whole again for a reason).
    pub source: usize,
    pub fields: UserFields,
    pub access: Access,
    /// What a stage after the first proposed → that stage's position, latest last.
    /// Everything else came from the first stage. Reasons are worded only for what ends up in the plan ([`Reasons`]):
    /// most users need none, and wording them all was a third of the rules' time.
    pub proposed_by: Vec<(ReasonKey, usize)>,
}

impl DesiredUser {
    /// The position of the stage that proposed `what`.
    fn stage_of(&self, what: &ReasonKey) -> usize {
        self.proposed_by
            .iter()
            .rev()
            .find(|(w, _)| w == what)
            .map_or(0, |(_, stage)| *stage)
    }

    /// Everything the rules proposed for this user: the fields they set, then the groups
    /// and role grants.
    pub fn proposals(&self) -> Vec<ReasonKey> {
        let f = &self.fields;
        let fields = [
            ("username", !f.username.is_empty()),
            ("email", f.email.is_some()),
            ("first_name", f.first_name.is_some()),
            ("last_name", f.last_name.is_some()),
        ];
        fields
            .iter()
            .filter(|(_, set)| *set)
            .map(|(what, _)| ReasonKey::Field(what))
            .chain(self.access.groups.iter().cloned().map(ReasonKey::Group))
            .chain(self.access.roles.iter().cloned().map(ReasonKey::Role))
            .collect()
    }
}

/// Why the rules proposed what they did for one user: each reason names the stage and the
/// LDAP value behind it, worded on demand from the whole entry (read back from the
/// directory once, the first time a reason is asked for).
pub struct Reasons<'a> {
    stages: &'a [Box<dyn Stage>],
    directory: &'a DirectorySnapshot,
    names: &'a GroupNames,
    user: &'a DesiredUser,
    entry: std::cell::OnceCell<RuleEntry>,
}

impl Reasons<'_> {
    /// Why `what` was proposed.
    pub fn of(&self, what: &ReasonKey) -> String {
        let Some(stage) = self.stages.get(self.user.stage_of(what)) else {
            return String::new();
        };
        let entry = self
            .entry
            .get_or_init(|| match self.directory.users.get(self.user.source) {
                Some(source) => rule_entry(self.directory, source, self.names),
                None => self.user.entry.clone(),
            });
        stage.describe(entry, what)
    }

    /// Whether the same stage proposed `a` and `b`.
    pub fn same_stage(&self, a: &ReasonKey, b: &ReasonKey) -> bool {
        self.user.stage_of(a) == self.user.stage_of(b)
    }

    /// Every proposal (as `explain` shows it) with its reason.
    pub fn all(&self) -> BTreeMap<String, String> {
        self.user
            .proposals()
            .into_iter()
            .map(|what| {
                let why = self.of(&what);
                (what.to_string(), why)
            })
            .collect()
    }
}

/// An entry left out of this run, and why. Reported, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedEntry {
    pub dn: String,
    pub reason: String,
    /// The entry's anchor: its ftrack user, if any, is left alone (a skipped entry is not a
    /// departed one).
    #[serde(skip)]
    pub anchor: String,
    /// Why, in kind: the `[guards] max_skipped` limit counts failed and invalid entries.
    #[serde(skip)]
    pub cause: SkipCause,
}

/// Why an entry was left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SkipCause {
    /// The data cannot go to ftrack as it is (empty username, invalid e-mail, a username two
    /// entries claim, an oversized entry, an ftrack user that belongs to another entry).
    #[default]
    Invalid,
    /// A rule module failed on it under `on_error = "skip"`.
    Failed,
    /// A rule decided to leave it out (`skip(reason)` from transform-user): policy, not trouble.
    Excluded,
}

impl SkippedEntry {
    /// An entry that cannot go to ftrack as it is.
    pub fn of(entry: &RuleEntry, reason: impl Into<String>) -> SkippedEntry {
        SkippedEntry {
            dn: entry.dn.clone(),
            reason: reason.into(),
            anchor: entry.anchor(),
            cause: SkipCause::Invalid,
        }
    }

    /// The same entry, with another cause.
    pub fn because(mut self, cause: SkipCause) -> SkippedEntry {
        self.cause = cause;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub users: Vec<DesiredUser>,
    pub skipped: Vec<SkippedEntry>,
}

impl Pipeline {
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Pipeline {
        Pipeline {
            stages,
            workers: None,
        }
    }

    /// Lets [`Pipeline::evaluate`] use every core: each extra worker thread gets its own set
    /// of stages from `factory` (no module instance is ever shared), and the users are split
    /// into contiguous runs whose results are joined in order — the same evaluation, and the
    /// same first error, as one thread gives.
    pub fn with_workers(mut self, factory: StageFactory) -> Pipeline {
        self.workers = Some(factory);
        self
    }

    /// Stage sets for the extra worker threads; none when one thread will do.
    fn extra_workers(&self, users: usize) -> Vec<Vec<Box<dyn Stage>>> {
        let Some(factory) = &self.workers else {
            return Vec::new();
        };
        let wanted = crate::parallel::threads_for(users) - 1;
        let mut extra = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            match factory() {
                Ok(stages) => extra.push(stages),
                Err(e) => {
                    tracing::debug!("evaluating the rules on fewer threads: {e}");
                    break;
                }
            }
        }
        extra
    }

    /// Runs every user through the stages. Fails on a stage error under `on_error = "abort"`.
    pub fn evaluate(&mut self, directory: &DirectorySnapshot) -> Result<Evaluation, RuleError> {
        let users = &directory.users;
        let _phase = crate::progress::start(crate::progress::RULES, Some(users.len() as u64));
        let mut extra = self.extra_workers(users.len());
        // A thread per set of stages (the run's own and each worker's), a part of the users
        // each, in order.
        let mut stage_sets: Vec<&mut Vec<Box<dyn Stage>>> = std::iter::once(&mut self.stages)
            .chain(extra.iter_mut())
            .collect();
        let results =
            crate::parallel::map_chunks_with(users, &mut stage_sets, |chunk, first, stages| {
                // The first part has room for everyone: the others are moved in after it,
                // and it is never moved itself (at a million users, a second of copying
                // and first touches on one core).
                let capacity = if first == 0 { users.len() } else { chunk.len() };
                evaluate_chunk(stages, directory, chunk, first, capacity)
            });
        let mut results = results.into_iter();
        let mut evaluation = results
            .next()
            .unwrap_or_else(|| Ok(Evaluation::default()))?;
        for part in results {
            let part = part?;
            evaluation.users.extend(part.users);
            evaluation.skipped.extend(part.skipped);
        }
        // A module whose last call used up its budget under `on_error = "skip"` only had
        // that entry skipped: the run still stops.
        for stage in &self.stages {
            if let Some(why) = stage.over_budget() {
                return Err(over_budget(stage.as_ref(), "the last entry", why));
            }
        }
        validate(&mut evaluation);
        Ok(evaluation)
    }

    /// The user attributes a run with these stages asks LDAP for, and why (see
    /// [`super::attributes`]).
    pub fn user_attributes(
        &self,
        ldap: &crate::config::LdapSettings,
    ) -> super::attributes::UserAttributes {
        super::attributes::user_attributes(ldap, &self.stages)
    }

    /// Whether a stage may read `memberOf` ([`super::attributes::reads_member_of`]).
    pub fn reads_member_of(&self, ldap: &crate::config::LdapSettings) -> bool {
        super::attributes::reads_member_of(ldap, &self.stages)
    }

    /// The reasons behind what the rules proposed for `user` (evaluated from `directory`,
    /// whose group texts one thread's users share in `names`).
    pub fn reasons<'a>(
        &'a self,
        directory: &'a DirectorySnapshot,
        names: &'a GroupNames,
        user: &'a DesiredUser,
    ) -> Reasons<'a> {
        Reasons {
            stages: &self.stages,
            directory,
            names,
            user,
            entry: std::cell::OnceCell::new(),
        }
    }

    /// The verdict on each departed user (see [`Pipeline::deprovision`]), in order, starting
    /// from what `[deprovision] action` says.
    pub fn verdicts(
        &mut self,
        departed: &[DepartedUser],
        action: crate::config::DeprovisionAction,
    ) -> Result<Vec<(Verdict, String)>, RuleError> {
        departed
            .iter()
            .map(|user| self.deprovision(user, Verdict::initial(user, action)))
            .collect()
    }

    /// Asks every stage for a verdict on a departed user, starting from `initial`.
    /// Returns the verdict and the stage that settled it. A failing stage under `skip`
    /// keeps the user as is, reported in the reason.
    pub fn deprovision(
        &mut self,
        user: &DepartedUser,
        initial: Verdict,
    ) -> Result<(Verdict, String), RuleError> {
        let mut verdict = initial;
        let mut by = "[deprovision] action".to_string();
        for stage in &mut self.stages {
            if let Some(why) = stage.over_budget() {
                return Err(over_budget(stage.as_ref(), &user.username, why));
            }
            let before = verdict.clone();
            verdict = match stage.deprovision(user, verdict) {
                Ok(v) => v,
                Err(e) if stage.on_error() == OnRuleError::Skip => {
                    return Ok((
                        Verdict::Keep(format!("kept: {e}")),
                        stage.name().to_string(),
                    ));
                }
                Err(e) => return Err(e),
            };
            if verdict != before {
                by = format!("rule module `{}`", stage.name());
            }
        }
        Ok((verdict, by))
    }
}

/// One contiguous chunk of users (starting at `offset` in the directory) through one set of
/// stages, in order.
fn evaluate_chunk(
    stages: &mut [Box<dyn Stage>],
    directory: &DirectorySnapshot,
    users: &[DirectoryUser],
    offset: usize,
    capacity: usize,
) -> Result<Evaluation, RuleError> {
    let mut evaluation = Evaluation {
        users: Vec::with_capacity(capacity),
        skipped: Vec::new(),
    };
    let names = GroupNames::of(directory);
    for (i, user) in users.iter().enumerate() {
        let entry = rule_entry(directory, user, &names);
        match evaluate_user(stages, entry, offset + i)? {
            Ok(mut desired) => {
                if !desired.entry.disabled {
                    desired.entry.attributes = Vec::new();
                    desired.entry.groups = Vec::new();
                }
                evaluation.users.push(desired)
            }
            Err(skipped) => evaluation.skipped.push(skipped),
        }
        if (i + 1) % PROGRESS_STEP == 0 {
            crate::progress::advance(crate::progress::RULES, PROGRESS_STEP as u64);
        }
    }
    crate::progress::advance(crate::progress::RULES, (users.len() % PROGRESS_STEP) as u64);
    Ok(evaluation)
}

fn evaluate_user(
    stages: &mut [Box<dyn Stage>],
    entry: RuleEntry,
    source: usize,
) -> Result<Result<DesiredUser, SkippedEntry>, RuleError> {
    if let Some(problem) = entry.problem() {
        return Ok(Err(SkippedEntry::of(&entry, problem)));
    }
    // A module that used its run budget stops the run, whatever its on_error says.
    for stage in stages.iter() {
        if let Some(why) = stage.over_budget() {
            return Err(over_budget(stage.as_ref(), &entry.dn, why));
        }
    }
    let mut proposed_by = Vec::new();
    let mut decision = UserDecision::Sync(UserFields::default());
    for (position, stage) in stages.iter_mut().enumerate() {
        let before = decision.clone();
        decision = match stage.transform_user(&entry, decision) {
            Ok(d) => d,
            Err(e) => return skip_or_abort(stage.on_error(), e, &entry),
        };
        if let (UserDecision::Sync(old), UserDecision::Sync(new)) = (&before, &decision) {
            for (field, changed) in [
                ("username", old.username != new.username),
                ("email", old.email != new.email),
                ("first_name", old.first_name != new.first_name),
                ("last_name", old.last_name != new.last_name),
            ] {
                if changed && position > 0 {
                    proposed_by.push((ReasonKey::Field(field), position));
                }
            }
        }
        if let UserDecision::Skip(why) = &decision {
            return Ok(Err(SkippedEntry::of(
                &entry,
                format!("{}: {why}", stage.name()),
            )
            .because(SkipCause::Excluded)));
        }
    }
    let UserDecision::Sync(fields) = decision else {
        unreachable!("a skip returned above")
    };
    let mut access = Access::default();
    for (position, stage) in stages.iter_mut().enumerate() {
        // The first stage starts from nothing: all it proposes is its own, no need to compare.
        let before = (position > 0 || stage.bounds().is_some()).then(|| access.clone());
        access = match stage.map_groups(&entry, &fields, access) {
            Ok(a) => a,
            Err(e) => return skip_or_abort(stage.on_error(), e, &entry),
        };
        let Some(before) = before else {
            continue;
        };
        if let Some(bounds) = stage.bounds() {
            if let Err(outside) = super::bounds::check(bounds, &before, &access) {
                let error = RuleError {
                    stage: stage.name().to_string(),
                    hook: "map-groups",
                    entry: entry.dn.clone(),
                    message: format!("for user `{}`: {outside}", fields.username),
                };
                return skip_or_abort(stage.on_error(), error, &entry);
            }
        }
        for group in access.groups.difference(&before.groups) {
            proposed_by.push((ReasonKey::Group(group.clone()), position));
        }
        for grant in access.roles.difference(&before.roles) {
            proposed_by.push((ReasonKey::Role(grant.clone()), position));
        }
    }
    Ok(Ok(DesiredUser {
        entry,
        source,
        fields,
        access,
        proposed_by,
    }))
}

fn over_budget(stage: &dyn Stage, entry: &str, why: String) -> RuleError {
    RuleError {
        stage: stage.name().to_string(),
        hook: "its hooks",
        entry: entry.to_string(),
        message: why,
    }
}

fn skip_or_abort(
    policy: OnRuleError,
    error: RuleError,
    entry: &RuleEntry,
) -> Result<Result<DesiredUser, SkippedEntry>, RuleError> {
    match policy {
        OnRuleError::Abort => Err(error),
        OnRuleError::Skip => {
            tracing::warn!("{error}; the entry is skipped (on_error = \"skip\")");
            Ok(Err(
                SkippedEntry::of(entry, error.to_string()).because(SkipCause::Failed)
            ))
        }
    }
}

/// Every group's DN and name, shared by the rule entries of one thread's users. Each thread
/// makes its own: the texts' reference counts are then never contended between threads.
pub struct GroupNames(Vec<(ArcStr, ArcStr)>);

impl GroupNames {
    pub fn of(directory: &DirectorySnapshot) -> GroupNames {
        GroupNames(
            directory
                .groups
                .iter()
                .map(|g| (ArcStr::from(g.dn.as_str()), ArcStr::from(g.name.as_str())))
                .collect(),
        )
    }
}

/// The rule-facing view of a directory user; its groups' texts are shared from `names` (see
/// [`GroupNames`]), made for this entry only for a group `names` lacks (a table of another
/// snapshot).
fn rule_entry(
    directory: &DirectorySnapshot,
    user: &DirectoryUser,
    names: &GroupNames,
) -> RuleEntry {
    let attributes = user
        .entry
        .attributes
        .iter()
        .map(|a| {
            let binary = a.values.iter().any(|v| matches!(v, Value::Binary(_)));
            if binary {
                let values = a
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::Binary(b) => base64::engine::general_purpose::STANDARD.encode(b),
                        Value::Text(t) => base64::engine::general_purpose::STANDARD.encode(t),
                    })
                    .collect();
                (format!("{};base64", a.name), values)
            } else {
                let values = a
                    .values
                    .iter()
                    .filter_map(|v| v.as_text().map(str::to_string))
                    .collect();
                (a.name.to_string(), values)
            }
        })
        .collect();
    let groups = user
        .groups
        .iter()
        .map(|&g| {
            let (dn, name) = match names.0.get(g as usize) {
                Some((dn, name)) => (dn.clone(), name.clone()),
                None => {
                    let group = directory.group(g);
                    (
                        ArcStr::from(group.dn.as_str()),
                        ArcStr::from(group.name.as_str()),
                    )
                }
            };
            GroupRef {
                dn,
                name,
                direct: user.direct_groups.binary_search(&g).is_ok(),
            }
        })
        .collect();
    RuleEntry {
        dn: user.entry.dn.clone(),
        stable_id: user.stable_id.clone(),
        disabled: user.disabled,
        attributes,
        groups,
    }
}

/// Leaves out entries ftrack must not get: empty usernames, invalid e-mail addresses, and
/// every entry of a username claimed twice (case-insensitively) — picking one would be a guess.
fn validate(evaluation: &mut Evaluation) {
    // Found first, then taken out in place: rebuilding the vector held every evaluated user
    // twice, the new copy with up to twice its room (100,000 users: 37 MB).
    // A thread per core for a large run: each counts its part's usernames, and each user's
    // count is the sum over the parts.
    let problems: Vec<(usize, String)> = {
        let users = &evaluation.users;
        let parts = crate::parallel::threads_for(users.len());
        let claims = crate::parallel::map_chunks(users, parts, |chunk, _| {
            let mut claims = Claims::default();
            for user in chunk {
                *claims
                    .entry(crate::caseless::lowercase(user.fields.username.trim()))
                    .or_default() += 1;
            }
            claims
        });
        crate::parallel::map_chunks(users, parts, |chunk, first| {
            chunk
                .iter()
                .enumerate()
                .filter_map(|(i, user)| problem_of(user, &claims).map(|reason| (first + i, reason)))
                .collect::<Vec<_>>()
        })
        .concat()
    };
    if problems.is_empty() {
        return;
    }
    let mut problems = problems.into_iter().peekable();
    let mut position = 0;
    let mut reasons = Vec::new();
    let left_out: Vec<DesiredUser> = evaluation
        .users
        .extract_if(.., |_| {
            let here = position;
            position += 1;
            match problems.next_if(|(i, _)| *i == here) {
                Some((_, reason)) => {
                    reasons.push(reason);
                    true
                }
                None => false,
            }
        })
        .collect();
    evaluation.skipped.extend(
        left_out
            .iter()
            .zip(reasons)
            .map(|(user, reason)| SkippedEntry::of(&user.entry, reason)),
    );
}

/// How many users of a part claim each lower-cased username.
type Claims<'a> = rustc_hash::FxHashMap<Cow<'a, str>, usize>;

/// Why `user` must not reach ftrack, if it must not; `claims` count each lower-cased username,
/// a part of the users each.
fn problem_of(user: &DesiredUser, claims: &[Claims<'_>]) -> Option<String> {
    let username = user.fields.username.trim();
    if username.is_empty() {
        return Some("the username is empty".to_string());
    }
    let key = crate::caseless::lowercase(username);
    let claimed: usize = claims.iter().filter_map(|c| c.get(&key)).sum();
    if claimed > 1 {
        return Some(format!(
            "another entry maps to the same ftrack username `{username}`"
        ));
    }
    match &user.fields.email {
        Some(email) if !is_plausible_email(email) => {
            Some(format!("`{email}` is not a valid e-mail address"))
        }
        _ => None,
    }
}

/// `local@domain.tld`, no spaces: enough to keep garbage out without rejecting real addresses.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_evaluate_in_parts_what_one_thread_would() {
        use crate::directory::entry::{Entry, Value};
        // Enough users for a thread per core; some unusable (no username), some claiming
        // one username from different parts, some in a mapped group.
        let n = 3 * crate::parallel::MIN_USERS_PER_THREAD;
        let users: Vec<Entry> = (0..n)
            .map(|i| {
                let mut e = Entry::new(format!("uid=u{i:05},ou=people,dc=x"));
                let uid = match i % 1000 {
                    7 => String::new(),
                    9 => "twin".to_string(),
                    _ => format!("u{i:05}"),
                };
                e.push("uid", Value::Text(uid));
                e.push("mail", Value::Text(format!("u{i}@x.example")));
                e
            })
            .collect();
        let mut group = Entry::new("cn=animators,ou=groups,dc=x");
        group.push("cn", Value::Text("animators".into()));
        for i in (0..n).step_by(3) {
            group.push("member", Value::Text(format!("uid=u{i:05},ou=people,dc=x")));
        }
        let directory = crate::directory::snapshot::assemble(crate::directory::EntrySet {
            users,
            groups: vec![group],
            ..Default::default()
        })
        .unwrap();
        let stages = || -> Vec<Box<dyn Stage>> {
            let mut mappings = std::collections::BTreeMap::new();
            mappings.insert(
                "animators".to_string(),
                crate::config::GroupMapping {
                    groups: vec!["Animation".into()],
                    roles: vec!["Artist".into()],
                    project_roles: Default::default(),
                },
            );
            vec![Box::new(super::super::builtin::BuiltinStage::new(
                &crate::config::AttributeMappings::default(),
                &mappings,
            ))]
        };
        let one = Pipeline::new(stages()).evaluate(&directory).unwrap();
        let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = made.clone();
        let mut parallel = Pipeline::new(stages()).with_workers(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(stages())
        }));
        let split = parallel.evaluate(&directory).unwrap();
        // A worker's stages per core beyond the first.
        assert_eq!(
            made.load(std::sync::atomic::Ordering::Relaxed),
            crate::parallel::threads_for(n) - 1
        );
        assert_eq!(format!("{:?}", split.users), format!("{:?}", one.users));
        assert_eq!(format!("{:?}", split.skipped), format!("{:?}", one.skipped));
        let unusable = (0..n).filter(|i| matches!(i % 1000, 7 | 9)).count();
        assert_eq!(one.skipped.len(), unusable);
        assert!(one.users.iter().any(|u| !u.access.groups.is_empty()));
    }

    #[test]
    fn a_username_claimed_twice_is_left_out_twice_in_whichever_parts_the_claims_are() {
        let user = |i: usize, username: &str| DesiredUser {
            entry: RuleEntry {
                dn: format!("uid=u{i},dc=x"),
                stable_id: None,
                disabled: false,
                attributes: Vec::new(),
                groups: Vec::new(),
            },
            source: i,
            fields: UserFields {
                username: username.into(),
                email: None,
                first_name: None,
                last_name: None,
            },
            access: Access::default(),
            proposed_by: Vec::new(),
        };
        // Enough users for a thread per core; `Twin` claimed first and last (different
        // parts), `pair` twice within the first part.
        let n = 4 * crate::parallel::MIN_USERS_PER_THREAD;
        let mut users: Vec<DesiredUser> = (0..n).map(|i| user(i, &format!("u{i}"))).collect();
        users[0].fields.username = "Twin".into();
        users[n - 1].fields.username = "twin ".into();
        users[5].fields.username = "pair".into();
        users[6].fields.username = "pair".into();
        users[7].fields.username = " ".into();
        let mut evaluation = Evaluation {
            users,
            skipped: Vec::new(),
        };
        validate(&mut evaluation);
        let left_out: Vec<(String, String)> = evaluation
            .skipped
            .iter()
            .map(|s| (s.dn.clone(), s.reason.clone()))
            .collect();
        let twice = |i: usize, name: &str| {
            (
                format!("uid=u{i},dc=x"),
                format!("another entry maps to the same ftrack username `{name}`"),
            )
        };
        let empty = (
            "uid=u7,dc=x".to_string(),
            "the username is empty".to_string(),
        );
        let expected = [
            twice(0, "Twin"),
            twice(5, "pair"),
            twice(6, "pair"),
            empty,
            twice(n - 1, "twin"),
        ];
        assert_eq!(left_out, expected);
        assert_eq!(evaluation.users.len(), n - 5);
    }

    #[test]
    fn email_plausibility() {
        for ok in [
            "a@b.co",
            "first.last+tag@studio.example",
            "x@sub.domain.example",
        ] {
            assert!(is_plausible_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@.co", "a@co.", "a@@b.co",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }
}
