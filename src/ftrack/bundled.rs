//! The bundled ftrack emulator, run in-process for `server_url = "emulator:PATH"`: the demo
//! and rule tests need no ftrack server. It is the default-on `emulator` cargo feature; a
//! build without it says how to get it back.

use super::OpenError;
use std::path::{Path, PathBuf};

/// A running emulator and the state file it is saved to.
#[cfg(feature = "emulator")]
#[derive(Debug)]
pub struct Bundled {
    running: ftrack_emulator::RunningEmulator,
    state: PathBuf,
}

#[cfg(feature = "emulator")]
impl Bundled {
    /// Starts the emulator from `state` (or `seed` when `state` does not exist yet), with the
    /// API user and a fresh key. Returns it and its URL and key.
    pub async fn start(
        api_user: &str,
        state: &Path,
        seed: Option<&PathBuf>,
    ) -> Result<(Bundled, String, String), OpenError> {
        let source = if state.exists() {
            Some(state)
        } else {
            seed.map(PathBuf::as_path)
        };
        let key = format!("emulator-{:016x}", fastrand::u64(..));
        let mut config = ftrack_emulator::EmulatorConfig::new(api_user, &key);
        if let Some(path) = source {
            let dump = ftrack_emulator::StateDump::from_file(path)
                .map_err(|e| OpenError::Emulator(format!("{}: {e}", path.display())))?;
            config = config.state(dump);
        }
        let running = ftrack_emulator::spawn(config)
            .await
            .map_err(|e| OpenError::Emulator(e.to_string()))?;
        let url = running.url();
        let bundled = Bundled {
            running,
            state: state.to_path_buf(),
        };
        Ok((bundled, url, key))
    }

    /// Writes the state back to its file, atomically.
    pub fn save(&self) -> Result<(), OpenError> {
        let path = &self.state;
        let fail =
            |e: std::io::Error| OpenError::Emulator(format!("cannot save {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.running.dump().to_json_pretty()).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

/// Without the `emulator` feature there is nothing to run.
#[cfg(not(feature = "emulator"))]
#[derive(Debug)]
pub enum Bundled {}

#[cfg(not(feature = "emulator"))]
impl Bundled {
    pub async fn start(
        _api_user: &str,
        state: &Path,
        _seed: Option<&PathBuf>,
    ) -> Result<(Bundled, String, String), OpenError> {
        Err(OpenError::Config(format!(
            "ftrack.server_url = \"emulator:{}\" needs the bundled ftrack emulator, which this build \
             of ldap2ftrack leaves out; build with the `emulator` feature (on by default: `cargo \
             build`, or `cargo build --features emulator`), or set server_url to your ftrack server",
            state.display()
        )))
    }

    pub fn save(&self) -> Result<(), OpenError> {
        match *self {}
    }
}
