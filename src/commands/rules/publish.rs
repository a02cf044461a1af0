//! `ldap2ftrack rules publish MODULE.wasm oci://…`: shares a rule module through an OCI
//! registry, after checking that it loads here.

use super::snippet::Snippet;
use crate::commands::output::{json_text, OutputFormat};
use crate::failure::Failure;
use std::path::Path;

/// `rules publish MODULE.wasm oci://HOST/NAMESPACE/NAME:TAG`: checks that the file is a rule
/// module this ldap2ftrack can load, pushes it in the Wasm OCI artefact layout and prints
/// the `[[rules]]` lines that pin it (by tag and by manifest digest).
pub fn publish(module: &Path, reference: &str, output: OutputFormat) -> Result<(), Failure> {
    use crate::config::ModuleSource;
    let target = match crate::config::module_ref::parse(reference) {
        Ok(ModuleSource::Oci(r)) if r.tag.is_some() && r.digest.is_none() => r,
        Ok(ModuleSource::Oci(_)) => {
            return Err(Failure::Usage(format!(
                "`{reference}`: publish to a tag (oci://HOST/NAMESPACE/NAME:TAG); the digest is \
                 the registry's to give and is printed afterwards"
            )))
        }
        Ok(_) => {
            return Err(Failure::Usage(format!(
                "`{reference}` is not an OCI reference; publish to \
                 oci://HOST[:PORT]/NAMESPACE/NAME:TAG"
            )))
        }
        Err(m) => return Err(Failure::Usage(m)),
    };
    // Only a module that loads here is published: metadata, ABI and imports checked.
    let info = crate::rules::wasm::inspect(module).map_err(|e| match e {
        crate::rules::wasm::RuleLoadError::Runtime { message } => Failure::Runtime(message),
        unusable => Failure::Usage(format!(
            "{} cannot be published: {unusable}",
            module.display()
        )),
    })?;
    let bytes = std::fs::read(module)
        .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", module.display())))?;
    if crate::rules::wasm::sha256_hex(&bytes) != info.sha256 {
        return Err(Failure::Runtime(format!(
            "{} changed while it was being published; try again",
            module.display()
        )));
    }
    let annotations = [
        ("org.opencontainers.image.title", info.name.clone()),
        ("org.opencontainers.image.version", info.version.clone()),
        (
            "org.opencontainers.image.description",
            info.description.clone(),
        ),
        ("dev.ldap2ftrack.rules.abi", info.abi_version.clone()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let env = |k: &str| std::env::var(k).ok();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let published = runtime
        .block_on(crate::rules::registry::publish(
            bytes,
            &target,
            annotations,
            &env,
        ))
        .map_err(Failure::Runtime)?;
    match output {
        OutputFormat::Json => println!("{}", json_text(&published)?),
        OutputFormat::Human => {
            println!(
                "published {} {} ({} bytes) to {}",
                info.name, info.version, published.size_bytes, published.reference
            );
            println!("           {}", published.by_digest);
            let snippet = Snippet {
                heading: Some("sync.toml of a studio using it (the digest form cannot be moved):"),
                module: &published.by_digest,
                info: &info,
            };
            print!("\n{snippet}");
        }
    }
    Ok(())
}
