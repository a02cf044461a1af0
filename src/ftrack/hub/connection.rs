//! One connection to the hub: the socket.io handshake over HTTP (with the Session's client and
//! credentials), the websocket upgrade (rustls, the roots `ftrack.ca_file` or the system
//! gives), and the wait for the server's `1::`.

use super::frame::{self, Frame};
use super::HubError;
use crate::config::Secret;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where the hub is and how to authenticate to it.
pub(super) struct Endpoint {
    pub(super) http: reqwest::Client,
    /// `scheme://host[:port]`: the hub lives at the host root, whatever path the API has.
    pub(super) origin: url::Url,
    pub(super) api_user: String,
    pub(super) api_key: Secret,
    /// For `wss://`; `None` for a plain loopback server.
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) timeout: Duration,
}

impl Endpoint {
    /// Handshake, upgrade, and the server's `1::`: an open connection.
    pub(super) async fn open(&self) -> Result<Socket, HubError> {
        let sid = self.handshake().await?;
        let mut ws_url = self.origin.clone();
        let scheme = if self.origin.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        ws_url.set_scheme(scheme).map_err(|()| {
            HubError::Connection(format!("cannot make a websocket URL of {}", self.origin))
        })?;
        ws_url.set_path(&format!("/socket.io/1/websocket/{sid}"));
        let connector = match &self.tls {
            Some(config) if scheme == "wss" => {
                Some(tokio_tungstenite::Connector::Rustls(config.clone()))
            }
            _ => Some(tokio_tungstenite::Connector::Plain),
        };
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            ws_url.as_str(),
            None,
            true,
            connector,
        );
        let (mut socket, _) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| {
                HubError::Connection(format!("{} did not open a websocket in time", self.origin))
            })?
            .map_err(|e| {
                HubError::Connection(format!("the websocket to {} failed: {e}", self.origin))
            })?;
        // The server opens with `1::`; heartbeats may not come before it.
        let opened = tokio::time::timeout(self.timeout, async {
            while let Some(message) = socket.next().await {
                match message {
                    Ok(Message::Text(text)) => match frame::parse(text.as_str()) {
                        Ok(Frame::Connect) => return Ok(()),
                        Ok(Frame::Heartbeat) => {
                            let _ = socket.send(Message::text(frame::HEARTBEAT)).await;
                        }
                        Ok(Frame::Disconnect) => {
                            return Err("the hub closed the connection at once".to_string())
                        }
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err("the websocket closed before the hub said it was open".to_string())
        })
        .await
        .map_err(|_| HubError::Connection(format!("{} did not say `1::` in time", self.origin)))?;
        opened.map_err(|why| HubError::Connection(format!("{}: {why}", self.origin)))?;
        Ok(socket)
    }

    /// `GET /socket.io/1/` with the API credentials; the session id.
    async fn handshake(&self) -> Result<String, HubError> {
        let url = self
            .origin
            .join("/socket.io/1/")
            .map_err(|e| HubError::Connection(format!("{}: {e}", self.origin)))?;
        let answer = self
            .http
            .get(url)
            .header("ftrack-user", &self.api_user)
            .header("ftrack-api-key", self.api_key.expose())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                let why = crate::net::tls_problem(&e, self.origin.host_str().unwrap_or(""), "")
                    .unwrap_or_else(|| e.without_url().to_string());
                HubError::Connection(format!(
                    "the event hub at {} cannot be reached: {why}",
                    self.origin
                ))
            })?;
        let status = answer.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(HubError::Refused(format!(
                "the event hub at {} refused the API user `{}` and key ({status}); check \
                 ftrack.api_user and the API key",
                self.origin, self.api_user
            )));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(HubError::NoHub(format!(
                "the ftrack server at {} has no event hub (its handshake answered {status})",
                self.origin
            )));
        }
        if !status.is_success() {
            return Err(HubError::Connection(format!(
                "the event hub handshake at {} answered {status}; the server may have no event hub",
                self.origin
            )));
        }
        let body = answer.text().await.map_err(|e| {
            HubError::Connection(format!("the event hub handshake at {}: {e}", self.origin))
        })?;
        let fields: Vec<&str> = body.trim().split(':').collect();
        let sid = fields.first().copied().unwrap_or_default();
        let websocket = fields
            .get(3)
            .is_some_and(|transports| transports.split(',').any(|t| t == "websocket"));
        if sid.is_empty()
            || !websocket
            || !sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HubError::Connection(format!(
                "the event hub at {} answered the handshake with something other than \
                 `sid:heartbeat:close:websocket`",
                self.origin
            )));
        }
        Ok(sid.to_string())
    }
}
