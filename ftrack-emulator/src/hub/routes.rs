//! The hub's HTTP surface: the socket.io 0.9 handshake `GET /socket.io/1/`
//! (authenticated like the API, or by `api_user`/`api_key` query parameters as ftrack's
//! JavaScript client sends them), the websocket upgrade
//! `GET /socket.io/1/websocket/{sid}` (the single-use session id authenticates), and
//! the admin endpoints under `/_emulator/hub/`.

use super::{connection, Hub};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// The routes, to be merged into the emulator's router.
pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/socket.io/1/", get(handshake))
        .route("/socket.io/1/websocket/{sid}", get(upgrade))
        .route("/_emulator/hub/events", get(events).delete(clear_events))
        .route("/_emulator/hub/rejections", get(rejections))
        .route("/_emulator/hub/subscribers", get(subscribers))
        .route("/_emulator/hub/restart", post(restart))
        .route("/_emulator/hub/drop", post(drop_connections))
        .route("/_emulator/hub/publish", post(publish))
        .with_state(hub)
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_body(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Check every credential pair given: the `ftrack-user`/`ftrack-api-key` headers and the
/// `api_user`/`api_key` query parameters. Each pair given must be complete and valid;
/// with `required`, at least one must be given.
fn check_credentials(
    hub: &Hub,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    required: bool,
) -> Result<(), String> {
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let pairs = [
        (
            "the ftrack-user and ftrack-api-key headers",
            h("ftrack-user"),
            h("ftrack-api-key"),
        ),
        (
            "the api_user and api_key query parameters",
            query.get("api_user").map(String::as_str),
            query.get("api_key").map(String::as_str),
        ),
    ];
    let mut given = false;
    for (what, user, key) in pairs {
        match (user, key) {
            (None, None) => {}
            (Some(u), Some(k)) if hub.credentials_match(u, k) => given = true,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "The supplied API key is not valid for this user ({what})."
                ))
            }
            _ => return Err(format!("Send {what} together.")),
        }
    }
    if required && !given {
        return Err(
            "The event hub needs credentials (the ftrack-user and ftrack-api-key \
                    headers, or api_user and api_key query parameters)."
                .to_string(),
        );
    }
    Ok(())
}

fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `sid:heartbeat-timeout:close-timeout:websocket`, or 401 / 503 (refusal bodies hold
/// no `:`, so no client can mistake one for a session).
async fn handshake(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(msg) = check_credentials(&hub, &headers, &query, true) {
        tracing::debug!("ftrack emulator hub: handshake refused: {msg}");
        return text(StatusCode::UNAUTHORIZED, msg);
    }
    let Some(sid) = hub.issue_sid() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The event hub is offline.".to_string(),
        );
    };
    let cfg = hub.config();
    text(
        StatusCode::OK,
        format!(
            "{sid}:{}:{}:websocket",
            whole_secs(cfg.heartbeat_timeout).max(1),
            whole_secs(cfg.sid_ttl).max(1)
        ),
    )
}

async fn upgrade(
    State(hub): State<Hub>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(msg) = check_credentials(&hub, &headers, &query, false) {
        return text(StatusCode::UNAUTHORIZED, msg);
    }
    let Some(generation) = hub.take_sid(&sid) else {
        return text(
            StatusCode::UNAUTHORIZED,
            "Unknown, used or expired session id; do the handshake (GET /socket.io/1/) again."
                .to_string(),
        );
    };
    ws.on_upgrade(move |socket| connection::run(hub, socket, generation))
}

async fn events(State(hub): State<Hub>) -> Response {
    json_body(StatusCode::OK, &hub.events())
}

async fn clear_events(State(hub): State<Hub>) -> Response {
    hub.clear_events();
    json_body(StatusCode::OK, &json!({"ok": true}))
}

async fn rejections(State(hub): State<Hub>) -> Response {
    json_body(StatusCode::OK, &hub.rejections())
}

async fn subscribers(State(hub): State<Hub>) -> Response {
    json_body(StatusCode::OK, &hub.subscribers())
}

async fn restart(State(hub): State<Hub>) -> Response {
    json_body(StatusCode::OK, &json!({"closed": hub.restart()}))
}

async fn drop_connections(State(hub): State<Hub>) -> Response {
    json_body(StatusCode::OK, &json!({"dropped": hub.drop_connections()}))
}

async fn publish(State(hub): State<Hub>, body: Bytes) -> Response {
    let result = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("the body must be one event as JSON: {e}"))
        .and_then(|event| hub.publish(event));
    match result {
        Ok(n) => json_body(StatusCode::OK, &json!({"delivered_to": n})),
        Err(e) => json_body(StatusCode::BAD_REQUEST, &json!({"error": e})),
    }
}
