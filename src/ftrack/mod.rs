//! The ftrack side: an authenticated [`Session`] and how to open one from the configuration,
//! including the bundled emulator run in-process for `server_url = "emulator:PATH"`.

mod bundled;
pub mod hub;
pub mod query;
pub mod row_id;
pub mod session;
pub mod snapshot;

pub use session::{FtrackError, RetryPolicy, Session, SessionSettings};
pub use snapshot::FtrackSnapshot;

use crate::config::{FtrackServer, FtrackSettings, Secret};
use std::time::Duration;

/// Why no session could be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A setting is missing or unreadable (exit 2): the message names the key and the variable.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Ftrack(#[from] FtrackError),
    #[error("the bundled ftrack emulator: {0}")]
    Emulator(String),
}

/// A session, and the in-process emulator behind it when the config asks for one.
#[derive(Debug)]
pub struct Connection {
    pub session: Session,
    emulator: Option<bundled::Bundled>,
}

impl Connection {
    pub async fn open(
        settings: &FtrackSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Connection, OpenError> {
        let api_user = settings
            .require_api_user()
            .map_err(OpenError::Config)?
            .to_string();
        let server = settings.require_server().map_err(OpenError::Config)?;
        let mut session_settings = SessionSettings {
            server_url: String::new(),
            api_user: api_user.clone(),
            api_key: Secret::new(String::new()),
            ca_file: settings.ca_file.clone(),
            timeout: Duration::from_secs(settings.timeout_s),
            batch_size: settings.batch_size,
            page_size: 1000,
            retry: RetryPolicy::default(),
        };
        match server {
            FtrackServer::Url(url) => {
                session_settings.server_url = url.clone();
                session_settings.api_key = settings
                    .api_key
                    .read("ftrack API key", env)
                    .map_err(|e| OpenError::Config(e.to_string()))?;
                Ok(Connection {
                    session: Session::new(session_settings)?,
                    emulator: None,
                })
            }
            FtrackServer::Emulator { state, seed } => {
                let (bundled, url, key) =
                    bundled::Bundled::start(&api_user, state, seed.as_ref()).await?;
                session_settings.server_url = url;
                session_settings.api_key = Secret::new(key);
                Ok(Connection {
                    session: Session::new(session_settings)?,
                    emulator: Some(bundled),
                })
            }
        }
    }

    /// Writes the emulator's state back to its file (after an apply); a no-op for a real server.
    pub fn save(&self) -> Result<(), OpenError> {
        self.emulator
            .as_ref()
            .map_or(Ok(()), bundled::Bundled::save)
    }
}
