//! The HTTP surface: `POST /api` (authenticated, fault-injected, strict/non-strict
//! status policy) and the admin endpoints under `/_emulator/`.

use crate::actions::Engine;
use crate::counters::Counters;
use crate::error::ApiError;
use crate::faults::{FaultState, Faults, Verdict};
use crate::state::{self, StateDump};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Everything a request handler needs, behind one lock (requests are serialised,
/// which is what makes batches trivially atomic with respect to each other).
#[derive(Debug)]
pub struct Inner {
    pub engine: Engine,
    pub counters: Counters,
    pub faults: FaultState,
}

pub struct Shared {
    pub inner: Mutex<Inner>,
    pub api_user: String,
    pub api_key: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("api_user", &self.api_user)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Lock, recovering from a poisoned lock (a panic elsewhere must not wedge tests).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Build the router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api", post(api))
        .route("/_emulator/state", get(get_state).put(put_state))
        .route("/_emulator/reset", post(reset))
        .route(
            "/_emulator/counters",
            get(get_counters).delete(reset_counters),
        )
        .route("/_emulator/counters/reset", post(reset_counters))
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(512 * 1024 * 1024))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(err: &ApiError, status: StatusCode) -> Response {
    json_response(status, err.to_json().to_string().into_bytes())
}

fn status_of(err: &ApiError) -> StatusCode {
    StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn api(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (verdict, latency) = {
        let mut inner = sh.lock();
        inner.counters.requests += 1;
        let v = inner.faults.decide();
        (v, inner.faults.faults.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = |sh: &Shared, err: ApiError, status: StatusCode| {
        sh.lock().counters.errors += 1;
        error_response(&err, status)
    };
    match verdict {
        Verdict::FailBefore => {
            return fail(
                &sh,
                ApiError::server("Injected fault: internal server error (request not executed)"),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
        Verdict::RateLimit(secs) => {
            let mut r = fail(
                &sh,
                ApiError::new(
                    "RateLimitError",
                    429,
                    format!("Injected fault: too many requests; retry after {secs} s"),
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
        Verdict::Proceed | Verdict::FailAfter => {}
    }

    let user = header_str(&headers, "ftrack-user");
    let key = header_str(&headers, "ftrack-api-key");
    if user != Some(sh.api_user.as_str()) || key != Some(sh.api_key.as_str()) {
        let msg = match (user, key) {
            (None, _) | (_, None) => "The ftrack-user and ftrack-api-key headers are required.",
            _ => "The supplied API key is not valid for this user.",
        };
        return fail(&sh, ApiError::credentials(msg), StatusCode::UNAUTHORIZED);
    }
    let strict =
        header_str(&headers, "ftrack-strict-api").is_some_and(|v| v.eq_ignore_ascii_case("true"));

    let sh2 = sh.clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let ops: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::validation(format!(
                "The request body must be a JSON array of operations: {e}"
            ))
        })?;
        let Value::Array(ops) = ops else {
            return Err(ApiError::validation(
                "The request body must be a JSON array of operations, e.g. [{\"action\": \"query_server_information\"}].",
            ));
        };
        let mut guard = sh2.lock();
        let inner = &mut *guard;
        let results = inner.engine.execute_batch(&ops, &mut inner.counters);
        drop(guard);
        match &results {
            Ok(r) => tracing::debug!(operations = r.len(), "ftrack emulator: batch applied"),
            Err(e) => tracing::debug!(error = %e, "ftrack emulator: batch rejected"),
        }
        let results = results?;
        Ok(serde_json::to_vec(&results).unwrap_or_else(|_| b"[]".to_vec()))
    })
    .await;
    let outcome = outcome.unwrap_or_else(|e| Err(ApiError::server(format!("internal error: {e}"))));
    match outcome {
        Ok(_) if verdict == Verdict::FailAfter => fail(
            &sh,
            ApiError::server("Injected fault: internal server error (the request WAS executed)"),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        Ok(body) => json_response(StatusCode::OK, body),
        Err(err) => {
            let status = if strict {
                status_of(&err)
            } else {
                StatusCode::OK
            };
            fail(&sh, err, status)
        }
    }
}

async fn get_state(State(sh): State<Arc<Shared>>) -> Response {
    let dump = state::dump(&sh.lock().engine.store);
    json_response(StatusCode::OK, dump.to_json_pretty().into_bytes())
}

fn admin_error(status: StatusCode, msg: String) -> Response {
    json_response(status, json!({ "error": msg }).to_string().into_bytes())
}

fn ok() -> Response {
    json_response(StatusCode::OK, br#"{"ok":true}"#.to_vec())
}

async fn put_state(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let dump = match StateDump::from_json(&text) {
        Ok(d) => d,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let store = match tokio::task::spawn_blocking(move || state::load(&dump)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return admin_error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return admin_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    sh.lock().engine.replace_store(store);
    ok()
}

async fn reset(State(sh): State<Arc<Shared>>) -> Response {
    sh.lock().engine.replace_store(crate::store::Store::new());
    ok()
}

async fn get_counters(State(sh): State<Arc<Shared>>) -> Response {
    let c = sh.lock().counters.clone();
    json_response(
        StatusCode::OK,
        serde_json::to_vec_pretty(&c).unwrap_or_default(),
    )
}

async fn reset_counters(State(sh): State<Arc<Shared>>) -> Response {
    sh.lock().counters = Counters::default();
    ok()
}

async fn get_faults(State(sh): State<Arc<Shared>>) -> Response {
    let f = sh.lock().faults.faults.clone();
    json_response(
        StatusCode::OK,
        serde_json::to_vec_pretty(&f).unwrap_or_default(),
    )
}

async fn put_faults(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            sh.lock().faults.set(f);
            ok()
        }
        Err(e) => admin_error(
            StatusCode::BAD_REQUEST,
            format!("faults must be a JSON object like {{\"error_every_nth\": 3}}: {e}"),
        ),
    }
}
