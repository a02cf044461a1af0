//! The two actions `ldap2ftrack listen` offers in ftrack's Actions menu, and who may use them.
//!
//! - `ldap2ftrack.preview` ("LDAP sync: preview"): the plan, as `plan` computes it, shown as
//!   its summary and first changes, with the whole plan in a Job an administrator can open.
//! - `ldap2ftrack.apply` ("LDAP sync: apply"): a confirmation form with the summary and the
//!   guard's verdict, bound to the plan shown; on confirm, `apply` under the run lock, only if
//!   a fresh plan is still the one confirmed.
//!
//! Only users who hold ftrack's Administrator role — read from ftrack when they ask, not
//! taken from the event — see or can launch them.

use crate::commands::apply::{apply_counted, ApplyOptions};
use crate::commands::module_pins;
use crate::commands::output::OutputFormat;
use crate::config::Config;
use crate::failure::Failure;
use crate::ftrack::hub::Event;
use crate::ftrack::Session;
use crate::plan::saved::binding;
use crate::run;
use serde_json::{json, Value};

pub const PREVIEW: &str = "ldap2ftrack.preview";
pub const APPLY: &str = "ldap2ftrack.apply";

/// The ftrack security role whose holders may use the actions.
pub const ADMINISTRATOR_ROLE: &str = "Administrator";

/// How many changes the preview and the confirmation show; the Job holds them all.
const SHOWN_CHANGES: usize = 20;

/// The most of the plan a preview's Job holds (characters): a first run of a large directory
/// is hundreds of megabytes of text, which belongs in `ldap2ftrack plan`, not in a Job.
const JOB_PLAN_CHARS: usize = 1_000_000;

/// The items a discover reply offers.
pub fn items() -> Value {
    json!({"items": [
        {
            "label": "LDAP sync: preview",
            "actionIdentifier": PREVIEW,
            "description": "What the LDAP sync would change in ftrack now (nothing is changed)",
            "variant": "preview",
        },
        {
            "label": "LDAP sync: apply",
            "actionIdentifier": APPLY,
            "description": "Apply the LDAP sync now, after a confirmation",
            "variant": "apply",
        },
    ]})
}

/// Whether `username` holds the Administrator role in ftrack.
pub async fn is_administrator(session: &Session, username: &str) -> Result<bool, String> {
    let expression = format!(
        "select id from UserSecurityRole where {} and {}",
        crate::ftrack::query::equals("user.username", username),
        crate::ftrack::query::equals("security_role.name", ADMINISTRATOR_ROLE),
    );
    session
        .query_all(&expression)
        .await
        .map(|rows| !rows.is_empty())
        .map_err(|e| format!("cannot read {username}'s security roles from ftrack: {e}"))
}

/// A plan computed for an action: what the reply shows and what a confirmation binds to.
pub struct Preview {
    pub summary: String,
    pub first_changes: Vec<String>,
    pub total: usize,
    /// The guard's refusal, when `apply` would be refused.
    pub refusal: Option<String>,
    pub binding: String,
    /// The whole plan, as `plan` prints it.
    pub human: String,
}

/// Plans as `plan` does (no lock: nothing is written) and prepares what the replies show.
pub fn preview(config: &Config) -> Result<Preview, Failure> {
    let rt = run::runtime()?;
    let mut pipeline = run::prepare(config)?;
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let inputs = rt.block_on(run::read_inputs(config, needed, false))?;
    let planned = run::plan(config, &inputs, &mut pipeline)?;
    let plan = &planned.plan;
    let refusal = match run::guard(config, plan, inputs.directory_users, false) {
        Err(Failure::Guard(why)) => Some(why),
        _ => None,
    };
    let summary = plan
        .summary()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Preview {
        summary: if summary.is_empty() {
            "no changes: ftrack matches the directory".to_string()
        } else {
            summary
        },
        first_changes: plan
            .operations
            .iter()
            .take(SHOWN_CHANGES)
            .map(|op| op.summary())
            .collect(),
        total: plan.operations.len(),
        refusal,
        binding: binding(&inputs.ftrack, &module_pins(config), plan),
        human: plan.render_human(),
    })
}

/// The reply to a preview launch: the summary and the first changes, as a form of labels.
pub fn preview_reply(preview: &Preview, job: Option<&str>) -> Value {
    let mut text = format!("**{}**", preview.summary);
    if !preview.first_changes.is_empty() {
        text.push_str("\n\n");
        text.push_str(&changes_text(preview));
    }
    if let Some(why) = &preview.refusal {
        text.push_str(&format!("\n\n`apply` would be refused: {why}"));
    }
    if let Some(job) = job {
        text.push_str(&format!("\n\nThe whole plan is in the job `{job}` (Jobs)."));
    }
    json!({
        "items": [{"type": "label", "value": text}],
        "title": "LDAP sync: preview",
        "submit_button_label": "Close",
    })
}

/// The confirmation form of an apply launch, bound to the plan it shows.
pub fn confirmation_form(preview: &Preview) -> Value {
    let mut text = format!("**{}**", preview.summary);
    if !preview.first_changes.is_empty() {
        text.push_str("\n\n");
        text.push_str(&changes_text(preview));
    }
    text.push_str(&match &preview.refusal {
        Some(why) => format!("\n\nThe guards refuse this plan: {why}. Nothing will be applied."),
        None => "\n\nThe guards allow this plan.".to_string(),
    });
    json!({
        "items": [
            {"type": "label", "value": text},
            {"type": "boolean", "label": "Apply these changes", "name": "confirm", "value": false},
            {"type": "hidden", "name": "binding", "value": preview.binding},
        ],
        "title": "LDAP sync: apply",
        "submit_button_label": "Apply",
    })
}

fn changes_text(preview: &Preview) -> String {
    let mut text = preview
        .first_changes
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n");
    if preview.total > preview.first_changes.len() {
        text.push_str(&format!(
            "\n    … and {} more",
            preview.total - preview.first_changes.len()
        ));
    }
    text
}

/// What a confirmed apply launch asks for: the binding it confirmed, if it was confirmed.
pub fn confirmed(event: &Event) -> Option<String> {
    let values = event.data.get("values")?;
    let confirm = match values.get("confirm") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    confirm
        .then(|| values.get("binding")?.as_str().map(str::to_string))
        .flatten()
}

/// Whether the launch carries a submitted form (a confirmation, or its refusal).
pub fn submitted(event: &Event) -> bool {
    event.data.get("values").is_some()
}

/// Applies the confirmed plan under the run lock (journal, metrics and sync event as a
/// scheduled run); the reply that says how it went.
pub fn apply_confirmed(config: &Config, bound_to: String) -> Value {
    let options = ApplyOptions {
        bound_to: Some(bound_to),
        ..ApplyOptions::default()
    };
    match apply_counted(config, &options, OutputFormat::Json) {
        Ok(applied) => json!({
            "success": true,
            "message": format!(
                "LDAP sync applied: {} operations in {} requests",
                applied.operations, applied.requests
            ),
        }),
        Err(failure) => {
            json!({"success": false, "message": format!("LDAP sync not applied: {failure}")})
        }
    }
}

/// Creates a finished Job holding the whole plan, for the preview to point at; its id.
pub async fn plan_job(
    session: &Session,
    username: &str,
    preview: &Preview,
) -> Result<String, String> {
    let users = session
        .query_all(&format!(
            "select id from User where {}",
            crate::ftrack::query::equals("username", username)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let user_id = users
        .first()
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no ftrack user `{username}`"))?
        .to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let mut plan = preview.human.as_str();
    let mut cut = "";
    if let Some((end, _)) = plan.char_indices().nth(JOB_PLAN_CHARS) {
        plan = &plan[..end];
        cut = "\n… (cut here: run `ldap2ftrack plan` on the sync host for the whole plan)";
    }
    let description = format!("LDAP sync preview: {}\n\n{plan}{cut}", preview.summary);
    let data = json!({"description": description}).to_string();
    session
        .call(&[json!({
            "action": "create",
            "entity_type": "Job",
            "entity_key": [id],
            "entity_data": {
                "__entity_type__": "Job",
                "id": id,
                "user_id": user_id,
                "status": "done",
                "type": "api_job",
                "data": data,
            },
        })])
        .await
        .map_err(|e| e.to_string())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(values: Value) -> Event {
        Event::new(
            "ftrack.action.launch",
            json!({"actionIdentifier": APPLY, "values": values}),
        )
    }

    #[test]
    fn only_a_ticked_confirmation_with_its_binding_applies() {
        assert_eq!(
            confirmed(&launch(json!({"confirm": true, "binding": "abc"}))).as_deref(),
            Some("abc")
        );
        assert_eq!(
            confirmed(&launch(json!({"confirm": "true", "binding": "abc"}))).as_deref(),
            Some("abc")
        );
        assert_eq!(
            confirmed(&launch(json!({"confirm": false, "binding": "abc"}))),
            None
        );
        assert_eq!(confirmed(&launch(json!({"confirm": true}))), None);
        let first = Event::new("ftrack.action.launch", json!({"actionIdentifier": APPLY}));
        assert_eq!(confirmed(&first), None);
        assert!(!submitted(&first));
    }

    #[test]
    fn the_confirmation_carries_the_binding_and_the_guards_verdict() {
        let preview = Preview {
            summary: "create_user: 2".into(),
            first_changes: vec!["+ user a".into(), "+ user b".into()],
            total: 25,
            refusal: None,
            binding: "b1nd".into(),
            human: String::new(),
        };
        let form = confirmation_form(&preview);
        let items = form["items"].as_array().unwrap();
        assert!(items
            .iter()
            .any(|i| i["type"] == "hidden" && i["name"] == "binding" && i["value"] == "b1nd"));
        let label = items[0]["value"].as_str().unwrap();
        assert!(
            label.contains("+ user a") && label.contains("and 23 more"),
            "{label}"
        );
        assert!(label.contains("The guards allow"), "{label}");
    }
}
