//! `ldap2ftrack rules inspect MODULE`: what a module is (metadata, hooks, configuration keys,
//! hash, imports), the bounds sync.toml gives it, and the `[[rules]]` entry that pins it. A
//! remote module is fetched into the module cache, so pinning it afterwards costs no second
//! download.

use super::snippet::Snippet;
use crate::commands::output::{print_json, OutputFormat};
use crate::config::Config;
use crate::failure::Failure;
use crate::rules::wasm::RuleLoadError;
use std::path::{Path, PathBuf};

/// Inspects `module` (a file, an `oci://` reference or an `https://` URL); `config` is the
/// sync.toml to read the fetch cache and the module's bounds from, when it can be read.
pub fn inspect(module: &str, config: &Path, output: OutputFormat) -> Result<(), Failure> {
    let unusable = |e: RuleLoadError| match e {
        RuleLoadError::Runtime { message } => Failure::Runtime(message),
        unusable => Failure::Usage(unusable.to_string()),
    };
    let source = crate::config::module_ref::parse(module).map_err(Failure::Usage)?;
    // sync.toml is optional here: inspecting a module needs no configuration.
    let config = Config::load(config).ok();
    let mut info = if source.is_remote() {
        // Kept in the fetch cache under its own hash ([run] fetch_cache_dir when sync.toml
        // can be read), so pinning it afterwards costs no second download.
        let cache = config
            .as_ref()
            .and_then(|c| c.run.fetch_cache_dir.clone())
            .or_else(|| crate::config::default_fetch_cache(&|k| std::env::var(k).ok()));
        let (file, _tmp) =
            crate::rules::fetch::fetch_for_inspect(&source, cache.as_deref()).map_err(unusable)?;
        let mut info = crate::rules::wasm::inspect(&file).map_err(unusable)?;
        info.path = PathBuf::from(source.to_string());
        info
    } else {
        crate::rules::wasm::inspect(Path::new(module)).map_err(unusable)?
    };
    // The bounds come from sync.toml, when it can be read and pins this module.
    if let Some(config) = &config {
        info.bounds = config
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.sha256.eq_ignore_ascii_case(&info.sha256))
            .map(|(i, r)| r.bounds.report(i))
            .collect();
    }
    match output {
        OutputFormat::Human => {
            let module = info.path.display().to_string();
            let snippet = Snippet {
                heading: None,
                module: &module,
                info: &info,
            };
            print!("{info}\n{snippet}");
        }
        OutputFormat::Json => print_json(&info)?,
    }
    Ok(())
}
