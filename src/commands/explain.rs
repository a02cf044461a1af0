//! `ldap2ftrack explain USERNAME`: why the rules map one person the way they do, and the
//! planned changes that touch them. Read-only, so it takes no run lock.

use super::output::{json_text, OutputFormat};
use crate::config::Config;
use crate::failure::Failure;
use crate::rules::pipeline::GroupNames;
use crate::run;

/// Explains one user: their entry, each proposal's reason, their planned changes.
pub fn explain(config: &Config, username: &str, output: OutputFormat) -> Result<(), Failure> {
    let rt = run::runtime()?;
    let mut pipeline = run::prepare(config)?;
    // Reasons are worded from the attributes the rules read: nothing more is needed.
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let inputs = rt.block_on(run::read_inputs(config, needed, false))?;
    let planned = run::plan(config, &inputs, &mut pipeline)?;
    let wanted = username.to_lowercase();
    let desired = planned
        .evaluation
        .users
        .iter()
        .find(|u| u.fields.username.to_lowercase() == wanted);
    let old_name = desired
        .and_then(|d| {
            let anchor = d.entry.anchor();
            inputs
                .ftrack
                .users
                .iter()
                .find(|u| u.metadata.get(crate::plan::diff::ANCHOR_KEY) == Some(&anchor))
        })
        .map(|u| u.username.to_lowercase());
    let operations: Vec<_> = planned
        .plan
        .operations
        .iter()
        .filter(|op| {
            let target = op.target.to_lowercase();
            target == wanted || Some(&target) == old_name.as_ref()
        })
        .collect();
    let skipped: Vec<_> = planned
        .plan
        .skipped
        .iter()
        .filter(|s| s.dn.to_lowercase().contains(&wanted))
        .collect();
    let names = GroupNames::of(&inputs.directory);
    let reasons = desired.map(|d| pipeline.reasons(&inputs.directory, &names, d).all());
    if desired.is_none() && operations.is_empty() && skipped.is_empty() {
        return Err(Failure::Runtime(format!(
            "`{}` is neither an LDAP user the rules map to ftrack nor the target of any planned change",
            username
        )));
    }
    match output {
        OutputFormat::Json => {
            let value = serde_json::json!({
                "username": username,
                "ldap_dn": desired.map(|d| d.entry.dn.clone()),
                "reasons": reasons,
                "operations": operations,
                "skipped": skipped,
            });
            println!("{}", json_text(&value)?);
        }
        OutputFormat::Human => {
            if let Some(d) = desired {
                println!("{} comes from {}", d.fields.username, d.entry.dn);
                for (what, why) in reasons.iter().flatten() {
                    println!("  {what}: {why}");
                }
            }
            if operations.is_empty() {
                println!("No changes planned for {}.", username);
            }
            for op in operations {
                println!("{}", op.summary());
                println!("    because {}", op.reason);
            }
            for s in skipped {
                println!("! skipped {}: {}", s.dn, s.reason);
            }
        }
    }
    Ok(())
}
