//! The hook call path: every call into a module (`metadata`, `configure` and the three
//! hooks) goes through [`guarded`], which gives it a full fuel budget, the wall-clock
//! deadline and the per-call log accounting; [`WasmStage`]'s hook calls add the output cap,
//! the rejection and trap messages, and a fresh instance after a trap.

use super::bindings::Rule;
use super::convert::{self, OutputSize};
use super::load::{configure, instantiate};
use super::no_wait::WouldWait;
use super::sandbox::HostState;
use super::{limits, HookName, WasmStage};
use crate::rules::{
    Access, DepartedUser, OnRuleError, RuleEntry, RuleError, Stage, UserDecision, UserFields,
    Verdict,
};
use std::time::Duration;
use sync_wrapper::SyncWrapper;
use wasmtime::{Store, Trap};

/// One live instance and its store.
pub(super) struct Live {
    pub(super) store: Store<HostState>,
    pub(super) rule: Rule,
}

/// Makes one call into the module under the per-call limits: a full fuel budget, the epoch
/// deadline, and the per-call log accounting around `f`. Returns what `f` returned and the
/// fuel (WebAssembly instructions) it used; `Err` when the fuel budget could not be set, and
/// the call was not made.
pub(super) fn guarded<T>(
    live: &mut Live,
    deadline: Duration,
    f: impl FnOnce(&Rule, &mut Store<HostState>) -> wasmtime::Result<T>,
) -> wasmtime::Result<(wasmtime::Result<T>, u64)> {
    live.store.set_fuel(limits::FUEL_PER_CALL)?;
    live.store.set_epoch_deadline(epoch_ticks(deadline));
    live.store.data_mut().begin_call();
    let result = f(&live.rule, &mut live.store);
    live.store.data_mut().end_call();
    let fuel_used = limits::FUEL_PER_CALL - live.store.get_fuel().unwrap_or(0);
    Ok((result, fuel_used))
}

/// The per-call wall-clock deadline, in epoch ticks (at least one).
fn epoch_ticks(deadline: Duration) -> u64 {
    let ticks = deadline
        .as_millis()
        .div_ceil(u128::from(limits::EPOCH_TICK_MS));
    u64::try_from(ticks)
        .unwrap_or(u64::MAX)
        .clamp(1, limits::EPOCH_TICKS_PER_CALL)
}

/// The longest one call may take.
pub(super) const CALL_DEADLINE: Duration =
    Duration::from_millis(limits::EPOCH_TICK_MS * limits::EPOCH_TICKS_PER_CALL);

/// Why a call failed, in words an admin can act on.
pub(super) fn describe(e: &wasmtime::Error, state: &HostState) -> String {
    let panic = state
        .last_error
        .as_ref()
        .map(|m| format!(" (the module logged: {m})"))
        .unwrap_or_default();
    if e.downcast_ref::<WouldWait>().is_some() {
        return format!("{WouldWait}; the instance was reset");
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => format!(
                "ran out of fuel: more than {} million WebAssembly instructions in one call \
                 (an endless loop, or far too much work per entry); the instance was reset",
                limits::FUEL_PER_CALL / 1_000_000
            ),
            Trap::Interrupt => format!(
                "exceeded the time limit of {} ms per call; the instance was reset",
                limits::EPOCH_TICK_MS * limits::EPOCH_TICKS_PER_CALL
            ),
            Trap::StackOverflow => {
                format!("overflowed its stack (too deep recursion){panic}; the instance was reset")
            }
            Trap::UnreachableCodeReached => {
                format!("trapped (a panic or abort in the module){panic}; the instance was reset")
            }
            other => format!("trapped: {other}{panic}; the instance was reset"),
        };
    }
    let text = format!("{e:?}");
    if text.contains("forcing trap when growing memory") {
        return format!(
            "exceeded the memory cap of {} MiB; the instance was reset",
            limits::MEMORY_BYTES >> 20
        );
    }
    format!("failed: {e}{panic}; the instance was reset")
}

pub(super) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [truncated]");
    }
    s
}

impl WasmStage {
    fn error(&self, hook: HookName, entry: &str, message: String) -> RuleError {
        RuleError {
            stage: self.name.clone(),
            hook: hook.wit(),
            entry: entry.to_string(),
            message,
        }
    }

    /// The live instance, making a fresh one (and configuring it) after a trap.
    fn live(&mut self) -> Result<&mut Live, String> {
        if self.live.is_none() {
            let mut live = instantiate(&self.pre, &self.log_name)?;
            match configure(&mut live, &self.config_json)? {
                Ok(reads) => self.reads = reads,
                Err(m) => return Err(format!("a fresh instance refused its configuration: {m}")),
            }
            self.instances += 1;
            self.live = Some(SyncWrapper::new(live));
        }
        self.live
            .as_mut()
            .map(SyncWrapper::get_mut)
            .ok_or_else(|| "no instance".to_string())
    }

    /// Runs one hook call under the limits and turns every failure into a [`RuleError`].
    fn call<W: OutputSize, R>(
        &mut self,
        hook: HookName,
        entry: &str,
        f: impl FnOnce(&Rule, &mut Store<HostState>) -> wasmtime::Result<Result<W, String>>,
        back: impl FnOnce(W) -> Result<R, String>,
    ) -> Result<R, RuleError> {
        let budget = std::sync::Arc::clone(&self.budget);
        let live = match self.live() {
            Ok(l) => l,
            Err(m) => {
                self.live = None;
                return Err(self.error(hook, entry, m));
            }
        };
        // The call may take what is left of the run budget, up to the per-call limit.
        let deadline = budget.remaining().min(CALL_DEADLINE);
        let started = std::time::Instant::now();
        let guarded = guarded(live, deadline, f);
        budget.spend(hook.wit(), started.elapsed());
        let (result, fuel_used) = match guarded {
            Ok(r) => r,
            Err(e) => return Err(self.error(hook, entry, format!("could not set fuel: {e}"))),
        };
        let failure = match &result {
            Err(e) => Some(describe(e, live.store.data())),
            Ok(_) => None,
        };
        self.last_fuel = fuel_used;
        match result {
            Ok(Ok(answer)) => {
                let size = answer.output_size();
                if size > limits::OUTPUT_BYTES {
                    return Err(self.error(
                        hook,
                        entry,
                        format!(
                            "returned {size} bytes of text, more than the {} MiB output cap",
                            limits::OUTPUT_BYTES >> 20
                        ),
                    ));
                }
                back(answer).map_err(|m| self.error(hook, entry, format!("malformed answer: {m}")))
            }
            Ok(Err(rejection)) => Err(self.error(
                hook,
                entry,
                format!(
                    "the rule rejected the entry: {}",
                    convert::clean_text(truncate(rejection, limits::REJECTION_BYTES))
                ),
            )),
            Err(e) => {
                self.live = None;
                // Stopped because the run budget ran out: say so, not "one slow call".
                let message = budget
                    .exceeded(&self.name)
                    .or(failure)
                    .unwrap_or_else(|| e.to_string());
                Err(self.error(hook, entry, message))
            }
        }
    }
}

impl Stage for WasmStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_error(&self) -> OnRuleError {
        self.on_error
    }

    fn bounds(&self) -> Option<&crate::config::ModuleBounds> {
        Some(&self.bounds)
    }

    fn over_budget(&self) -> Option<String> {
        self.budget.exceeded(&self.name)
    }

    /// What `configure` said the hooks read. LDAP is read once, before any hook call: a
    /// fresh instance (after a trap) that says otherwise still sees only what was read.
    fn attributes_read(&self) -> Option<&[String]> {
        if !(self.transform_user || self.map_groups || self.deprovision) {
            return Some(&[]); // no hook is ever handed an entry
        }
        self.reads.attributes.as_deref()
    }

    fn transform_user(
        &mut self,
        entry: &RuleEntry,
        proposal: UserDecision,
    ) -> Result<UserDecision, RuleError> {
        if !self.transform_user {
            return Ok(proposal);
        }
        let view = convert::EntryView::new(entry, &self.reads);
        let attributes = view.attributes();
        let p = convert::decision(&proposal);
        self.call(
            HookName::TransformUser,
            &entry.dn,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_transform_user(
                    store,
                    view.lower(&attributes),
                    p,
                )
            },
            convert::decision_back,
        )
    }

    fn map_groups(
        &mut self,
        entry: &RuleEntry,
        user: &UserFields,
        proposal: Access,
    ) -> Result<Access, RuleError> {
        if !self.map_groups {
            return Ok(proposal);
        }
        let view = convert::EntryView::new(entry, &self.reads);
        let attributes = view.attributes();
        let (groups, roles) = convert::access_parts(&proposal);
        self.call(
            HookName::MapGroups,
            &entry.dn,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_map_groups(
                    store,
                    view.lower(&attributes),
                    convert::user_fields(user),
                    convert::access(&groups, &roles),
                )
            },
            convert::access_back,
        )
    }

    fn deprovision(
        &mut self,
        user: &DepartedUser,
        proposal: Verdict,
    ) -> Result<Verdict, RuleError> {
        if !self.deprovision {
            return Ok(proposal);
        }
        let view = user
            .entry
            .as_ref()
            .map(|e| convert::EntryView::new(e, &self.reads));
        let attributes = view.as_ref().map(|v| v.attributes()).unwrap_or_default();
        self.call(
            HookName::Deprovision,
            &user.username,
            |rule, store| {
                rule.ldap2ftrack_rules_hooks().call_deprovision(
                    store,
                    convert::departed(user, view.as_ref().map(|v| v.lower(&attributes))),
                    convert::verdict(&proposal),
                )
            },
            convert::verdict_back,
        )
    }
}
