//! The authenticated ftrack `Session`: every call to the ftrack API goes through here.
//!
//! It mirrors the official Python client's contract (ftrack-api.md §1, §6): one `POST /api`
//! per batch with the `ftrack-user` / `ftrack-api-key` headers on every request, error
//! objects turned into typed errors, queries paged with `metadata.next.offset`. On top of it:
//! retries with exponential backoff and jitter for connection errors, 5xx and 429 (honouring
//! `Retry-After`), bounded in attempts and total time. The API key is a [`Secret`]: it is
//! never in a log line, an error or `Debug` output.

use crate::config::Secret;
use serde_json::{json, Value};
use std::fmt;
use std::time::{Duration, Instant};

/// The ftrack-only way to trust a private CA, after the general ones.
const FTRACK_CA_HINT: &str = ", or set ftrack.ca_file to that CA's PEM file";

/// What went wrong talking to ftrack. Messages never contain the API key.
#[derive(Debug, thiserror::Error)]
pub enum FtrackError {
    /// The server answered with an error object (`{exception, content, error_code}`).
    #[error("ftrack refused the request: {exception}: {content}")]
    Server {
        exception: String,
        content: String,
        status: u16,
    },
    #[error("ftrack answered HTTP {status} without an error object: {body}")]
    Http { status: u16, body: String },
    #[error("cannot reach ftrack at {url}: {cause}; check ftrack.server_url and the network")]
    Transport { url: String, cause: String },
    /// The server's certificate was refused: retrying cannot help, trusting its CA can.
    #[error("cannot reach ftrack at {url}: {problem}")]
    Tls { url: String, problem: String },
    /// A redirect is never followed: the API key rides on every request, and the new address
    /// may be another host. `to` is the Location's origin only (it may carry tokens).
    #[error(
        "ftrack at {url} answered HTTP {status}, a redirect to {to}; ldap2ftrack does not follow \
         redirects, so the API key is sent nowhere but ftrack.server_url. Set ftrack.server_url \
         to the address ftrack answers at directly (the final address, if you trust {to})"
    )]
    Redirected {
        url: String,
        status: u16,
        to: String,
    },
    #[error(
        "ftrack still failing after {attempts} attempts over {elapsed_s:.1} s; last error: {last}"
    )]
    GaveUp {
        attempts: u32,
        elapsed_s: f64,
        last: Box<FtrackError>,
    },
    #[error("unexpected answer from ftrack: {0}")]
    Protocol(String),
}

impl FtrackError {
    /// The server's exception name, for callers that react to one (e.g. "already exists").
    pub fn exception(&self) -> Option<&str> {
        match self {
            FtrackError::Server { exception, .. } => Some(exception),
            FtrackError::GaveUp { last, .. } => last.exception(),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            FtrackError::Transport { .. } => true,
            FtrackError::Http { status, .. } | FtrackError::Server { status, .. } => {
                *status == 429 || *status >= 500
            }
            _ => false,
        }
    }
}

/// How hard to try before giving up on one request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(15),
            max_total: Duration::from_secs(120),
        }
    }
}

/// Everything needed to open a session.
#[derive(Clone)]
pub struct SessionSettings {
    pub server_url: String,
    pub api_user: String,
    pub api_key: Secret,
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
    pub batch_size: usize,
    /// Rows per query page.
    pub page_size: usize,
    pub retry: RetryPolicy,
}

pub struct Session {
    http: reqwest::Client,
    server_url: String,
    /// The server's host name, for messages about its certificate.
    host: String,
    api_user: String,
    api_key: Secret,
    /// `ftrack.ca_file`, for connections this client does not make itself (the event hub's
    /// websocket).
    ca_file: Option<std::path::PathBuf>,
    batch_size: usize,
    page_size: usize,
    retry: RetryPolicy,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server_url", &self.server_url)
            .field("api_user", &self.api_user)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(settings: SessionSettings) -> Result<Session, FtrackError> {
        // No redirect is followed: a redirect answer becomes FtrackError::Redirected.
        let mut builder = crate::net::client_builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout);
        if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(|e| FtrackError::Transport {
                url: settings.server_url.clone(),
                cause: format!("cannot read ftrack.ca_file {}: {e}", ca.display()),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                FtrackError::Transport {
                    url: settings.server_url.clone(),
                    cause: format!(
                        "ftrack.ca_file {} is not a PEM certificate: {e}",
                        ca.display()
                    ),
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| FtrackError::Transport {
            url: settings.server_url.clone(),
            cause: format!("cannot set up the HTTP client: {e}"),
        })?;
        let host = url::Url::parse(&settings.server_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| settings.server_url.clone());
        Ok(Session {
            http,
            host,
            server_url: settings.server_url.trim_end_matches('/').to_string(),
            api_user: settings.api_user,
            api_key: settings.api_key,
            ca_file: settings.ca_file,
            batch_size: settings.batch_size.max(1),
            page_size: settings.page_size.max(1),
            retry: settings.retry,
        })
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    pub fn api_user(&self) -> &str {
        &self.api_user
    }

    /// The HTTP client (TLS roots, no redirects), for the event hub's handshake.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(super) fn api_key(&self) -> &Secret {
        &self.api_key
    }

    pub(super) fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    /// Sends `operations`, split into requests of at most `batch_size`, and returns one result
    /// per operation in order. Each request is atomic on the server; a failure stops here.
    pub async fn call(&self, operations: &[Value]) -> Result<Vec<Value>, FtrackError> {
        let mut results = Vec::with_capacity(operations.len());
        for batch in operations.chunks(self.batch_size) {
            let answer = self.send_with_retries(batch).await?;
            if answer.len() != batch.len() {
                return Err(FtrackError::Protocol(format!(
                    "{} operations sent, {} results received",
                    batch.len(),
                    answer.len()
                )));
            }
            results.extend(answer);
        }
        Ok(results)
    }

    /// Sends `operations` as exactly one request (with retries): one atomic batch.
    pub async fn call_one_request(&self, operations: &[Value]) -> Result<Vec<Value>, FtrackError> {
        let answer = self.send_with_retries(operations).await?;
        if answer.len() != operations.len() {
            return Err(FtrackError::Protocol(format!(
                "{} operations sent, {} results received",
                operations.len(),
                answer.len()
            )));
        }
        Ok(answer)
    }

    /// `query_server_information`: the server's version and settings.
    pub async fn server_information(&self) -> Result<Value, FtrackError> {
        let mut r = self
            .call(&[json!({"action": "query_server_information"})])
            .await?;
        Ok(r.pop().unwrap_or(Value::Null))
    }

    /// Runs `expression` (without offset/limit) and returns every row, page by page.
    pub async fn query_all(&self, expression: &str) -> Result<Vec<Value>, FtrackError> {
        self.query_all_as(expression).await
    }

    /// [`Session::query_all`] decoding each row straight into `T`: no JSON tree is built for
    /// rows that are then converted anyway (a large read is hundreds of thousands of rows).
    ///
    /// After a full first page, two pages are asked for at a time (every other offset each):
    /// while one is decoded here, the server works on the other, instead of each waiting for
    /// the other in turn. Those pages are used only if they tile the result (each full and
    /// its next offset where the next page starts, up to the page that ends it). For a server
    /// that pages otherwise, the pages a one-at-a-time read would have fetched are kept, and
    /// the rest is read one page at a time from there, following its next offsets as the
    /// official client does.
    pub async fn query_all_as<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
    ) -> Result<Vec<T>, FtrackError> {
        let size = self.page_size as u64;
        let first = self.page::<T>(expression, 0).await?;
        if !first.leads_on(size) {
            return self.query_on(expression, Vec::new(), first).await;
        }
        let lane = |start: u64| async move {
            let mut pages = Vec::new();
            let mut offset = start;
            loop {
                let page = self.page::<T>(expression, offset).await?;
                let leads_on = page.leads_on(size);
                pages.push(page);
                if !leads_on {
                    return Ok::<_, FtrackError>(pages);
                }
                offset += 2 * size;
            }
        };
        let (odd, even) = tokio::try_join!(lane(size), lane(2 * size))?;
        let mut pages: Vec<Page<T>> = std::iter::once(first).chain(odd).chain(even).collect();
        pages.sort_unstable_by_key(|p| p.offset);
        match tiled(&pages, size) {
            Some((count, rows)) => {
                let mut all = Vec::with_capacity(rows);
                for page in pages.into_iter().take(count) {
                    all.extend(page.rows);
                }
                Ok(all)
            }
            None => {
                // The pages up to the first that does not follow on are what reading page by
                // page would have fetched; the rest is read that way from there.
                tracing::debug!(
                    expression,
                    "the server pages otherwise; reading on page by page"
                );
                let kept = leading(&pages, size);
                let mut kept: Vec<Page<T>> = pages.into_iter().take(kept).collect();
                let last = match kept.pop() {
                    Some(last) => last,
                    // `pages` starts with the first page, so this is not reached.
                    None => self.page::<T>(expression, 0).await?,
                };
                let mut rows = Vec::new();
                for page in kept {
                    rows.extend(page.rows);
                }
                self.query_on(expression, rows, last).await
            }
        }
    }

    /// The rest of a query, one page at a time from each page's next offset: `rows` are the
    /// rows of the pages before `last`, the page read last.
    async fn query_on<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
        mut rows: Vec<T>,
        last: Page<T>,
    ) -> Result<Vec<T>, FtrackError> {
        let Page {
            mut offset,
            rows: last_rows,
            mut next,
        } = last;
        let mut empty = last_rows.is_empty();
        rows.extend(last_rows);
        loop {
            match next {
                Some(n) if n > offset && !empty => offset = n,
                _ => return Ok(rows),
            }
            let page = self.page::<T>(expression, offset).await?;
            empty = page.rows.is_empty();
            next = page.next;
            // Grown by an eighth at a time, not doubled: 325,000 memberships held up to twice
            // their size in slack for the rest of the run (70 MB at 100,000 users).
            if rows.capacity() - rows.len() < page.rows.len() {
                rows.reserve_exact(page.rows.len().max(rows.len() / 8));
            }
            rows.extend(page.rows);
        }
    }

    /// One page of `expression`, from `offset`.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
        offset: u64,
    ) -> Result<Page<T>, FtrackError> {
        let op = json!({
            "action": "query",
            "expression": format!("{expression} offset {offset} limit {}", self.page_size),
        });
        let decode = |status: u16, bytes: &[u8]| decode_page::<T>(status, bytes, expression);
        let (rows, next) = self
            .send_with_retries_decoded(std::slice::from_ref(&op), decode)
            .await?;
        crate::progress::advance(crate::progress::FTRACK_READ, rows.len() as u64);
        Ok(Page { offset, rows, next })
    }

    async fn send_with_retries(&self, batch: &[Value]) -> Result<Vec<Value>, FtrackError> {
        self.send_with_retries_decoded(batch, decode_answer).await
    }

    async fn send_with_retries_decoded<R>(
        &self,
        batch: &[Value],
        decode: impl Fn(u16, &[u8]) -> Result<R, FtrackError>,
    ) -> Result<R, FtrackError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (result, retry_after) = self.send_once(batch, &decode).await;
            let error = match result {
                Ok(results) => return Ok(results),
                Err(e) if !e.retryable() => return Err(e),
                Err(e) => e,
            };
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            let out_of_time = started.elapsed() + delay > self.retry.max_total;
            if attempt >= self.retry.max_attempts || out_of_time {
                return Err(FtrackError::GaveUp {
                    attempts: attempt,
                    elapsed_s: started.elapsed().as_secs_f64(),
                    last: Box::new(error),
                });
            }
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "ftrack request failed ({error}); retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with equal jitter: half of first_delay × 2^(attempt-1) (capped at
    /// max_delay) plus a random part up to the other half, so a retry never comes at once.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .retry
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.retry.max_delay);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(millis / 2 + fastrand::u64(0..=millis / 2))
    }

    async fn send_once<R>(
        &self,
        batch: &[Value],
        decode: &impl Fn(u16, &[u8]) -> Result<R, FtrackError>,
    ) -> (Result<R, FtrackError>, Option<Duration>) {
        let body = match serde_json::to_vec(batch) {
            Ok(b) => b,
            Err(e) => {
                return (
                    Err(FtrackError::Protocol(format!(
                        "cannot encode the request: {e}"
                    ))),
                    None,
                )
            }
        };
        let url = format!("{}/api", self.server_url);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("ftrack-user", &self.api_user)
            .header("ftrack-api-key", self.api_key.expose())
            .header("ftrack-strict-api", "true")
            .body(body)
            .send()
            .await;
        let transport =
            |e: reqwest::Error| match crate::net::tls_problem(&e, &self.host, FTRACK_CA_HINT) {
                Some(problem) => FtrackError::Tls {
                    url: self.server_url.clone(),
                    problem,
                },
                None => FtrackError::Transport {
                    url: self.server_url.clone(),
                    cause: crate::net::describe(&e, &self.host),
                },
            };
        let response = match response {
            Ok(r) => r,
            Err(e) => return (Err(transport(e)), None),
        };
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = url::Url::parse(&url)
                .ok()
                .and_then(|asked| crate::net::location(&asked, response.headers()))
                .map_or_else(
                    || "an address it did not give".to_string(),
                    |l| crate::net::origin(&l),
                );
            let url = self.server_url.clone();
            return (Err(FtrackError::Redirected { url, status, to }), None);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return (Err(transport(e)), retry_after),
        };
        (decode(status, &bytes), retry_after)
    }
}

/// Turns an HTTP answer into results or a typed error, in the official client's order.
fn decode_answer(status: u16, bytes: &[u8]) -> Result<Vec<Value>, FtrackError> {
    let body: Result<Value, _> = serde_json::from_slice(bytes);
    if let Ok(Value::Object(map)) = &body {
        if let Some(exception) = map.get("exception") {
            return Err(FtrackError::Server {
                exception: exception.as_str().unwrap_or("Error").to_string(),
                content: map
                    .get("content")
                    .map(|c| {
                        c.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| c.to_string())
                    })
                    .unwrap_or_default(),
                status,
            });
        }
    }
    if status >= 400 {
        return Err(FtrackError::Http {
            status,
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        });
    }
    match body {
        Ok(Value::Array(results)) => Ok(results),
        Ok(other) => Err(FtrackError::Protocol(format!(
            "expected a list of results, got {}",
            truncate(&other.to_string())
        ))),
        Err(e) => Err(FtrackError::Protocol(format!(
            "the answer is not JSON: {e}"
        ))),
    }
}

/// One page of a query's rows, and where the server says the next one starts.
struct Page<T> {
    offset: u64,
    rows: Vec<T>,
    next: Option<u64>,
}

impl<T> Page<T> {
    /// Whether this page is full and the next one starts right after it.
    fn leads_on(&self, size: u64) -> bool {
        self.rows.len() as u64 == size && self.next == Some(self.offset + size)
    }
}

/// How many of `pages`, sorted by offset, are the ones reading page by page from offset 0
/// would have fetched: each at its place, every one before the last leading on to it.
fn leading<T>(pages: &[Page<T>], size: u64) -> usize {
    let mut kept = 0;
    for (i, page) in pages.iter().enumerate() {
        let follows = page.offset == i as u64 * size && (i == 0 || pages[i - 1].leads_on(size));
        if !follows {
            break;
        }
        kept = i + 1;
    }
    kept
}

/// Whether `pages`, sorted by offset, tile a query's result from offset 0: each page leads
/// on to the next, up to one that ends the result (no next offset, or no rows). Returns how
/// many pages that is and their rows, or `None` when they do not tile.
fn tiled<T>(pages: &[Page<T>], size: u64) -> Option<(usize, usize)> {
    let mut rows = 0;
    for (i, page) in pages.iter().enumerate() {
        if page.offset != i as u64 * size {
            return None;
        }
        rows += page.rows.len();
        if page.next.is_none() || page.rows.is_empty() {
            return Some((i + 1, rows));
        }
        if !page.leads_on(size) {
            return None;
        }
    }
    None
}

/// One query page decoded into rows of `T` and the next offset. Anything else (an error
/// object, an HTTP error, a row of the wrong shape) is decoded the general way, so errors
/// read exactly as they do for any other call.
fn decode_page<T: serde::de::DeserializeOwned>(
    status: u16,
    bytes: &[u8],
    expression: &str,
) -> Result<(Vec<T>, Option<u64>), FtrackError> {
    #[derive(serde::Deserialize)]
    struct Page<T> {
        data: Vec<T>,
        #[serde(default)]
        metadata: Option<PageMetadata>,
    }
    #[derive(serde::Deserialize)]
    struct PageMetadata {
        #[serde(default)]
        next: Option<NextPage>,
    }
    #[derive(serde::Deserialize)]
    struct NextPage {
        #[serde(default)]
        offset: Option<u64>,
    }
    if status < 400 {
        if let Ok(mut pages) = serde_json::from_slice::<Vec<Page<T>>>(bytes) {
            if pages.len() == 1 {
                let page = pages.remove(0);
                let next = page.metadata.and_then(|m| m.next).and_then(|n| n.offset);
                return Ok((page.data, next));
            }
        }
    }
    let mut answer = decode_answer(status, bytes)?;
    let page = answer.pop().unwrap_or(Value::Null);
    let Some(data) = page.get("data").and_then(Value::as_array) else {
        return Err(FtrackError::Protocol(format!(
            "query `{expression}` answered without a data list"
        )));
    };
    let why = data
        .iter()
        .find_map(|row| serde_json::from_value::<T>(row.clone()).err())
        .map_or_else(|| "an unexpected answer".to_string(), |e| e.to_string());
    Err(FtrackError::Protocol(format!(
        "a row of `{expression}` does not have the expected shape: {why}"
    )))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(offset: u64, rows: usize, next: Option<u64>) -> Page<u8> {
        Page {
            offset,
            rows: vec![0; rows],
            next,
        }
    }

    #[test]
    fn pages_read_two_at_a_time_are_used_only_when_they_tile_the_result() {
        // Full pages, each leading on to the next, up to a short last one.
        let pages = [
            page(0, 10, Some(10)),
            page(10, 10, Some(20)),
            page(20, 3, None),
            page(30, 0, None),
        ];
        assert_eq!(
            tiled(&pages, 10),
            Some((3, 23)),
            "the page past the end is not used"
        );
        // An exact multiple: the end is an empty page, or a full one without a next offset.
        let exact = [page(0, 10, Some(10)), page(10, 0, None), page(20, 0, None)];
        assert_eq!(tiled(&exact, 10), Some((2, 10)));
        assert_eq!(tiled(&[page(0, 10, None)], 10), Some((1, 10)));
        // A server that caps pages below the limit, or says the next page starts elsewhere,
        // or a page missing: not tiled, so the query is read on page by page.
        let capped = [
            page(0, 8, Some(8)),
            page(10, 8, Some(18)),
            page(20, 2, None),
        ];
        assert_eq!(tiled(&capped, 10), None);
        let elsewhere = [
            page(0, 10, Some(12)),
            page(10, 10, Some(20)),
            page(20, 0, None),
        ];
        assert_eq!(tiled(&elsewhere, 10), None);
        let gap = [page(0, 10, Some(10)), page(20, 1, None)];
        assert_eq!(tiled(&gap, 10), None);
        let unended = [page(0, 10, Some(10)), page(10, 10, Some(20))];
        assert_eq!(tiled(&unended, 10), None);
        // When they do not tile, the pages a page-by-page read would have fetched are kept,
        // and that read goes on from the last of them.
        assert_eq!(leading(&gap, 10), 1);
        assert_eq!(
            leading(&elsewhere, 10),
            1,
            "page 10 is not where page 0 said"
        );
        let short_middle = [
            page(0, 10, Some(10)),
            page(10, 7, Some(17)),
            page(20, 10, Some(30)),
        ];
        assert_eq!(
            leading(&short_middle, 10),
            2,
            "page 10 is kept, page 20 is not"
        );
        assert_eq!(leading(&unended, 10), 2);
    }

    #[test]
    fn decodes_results_and_error_objects_like_the_official_client() {
        assert_eq!(
            decode_answer(200, b"[{\"a\":1}]").unwrap(),
            vec![json!({"a": 1})]
        );
        let e = decode_answer(
            401,
            br#"{"exception":"InvalidCredentialsError","content":"bad key","error_code":null}"#,
        )
        .unwrap_err();
        assert_eq!(e.exception(), Some("InvalidCredentialsError"));
        assert!(!e.retryable());
        // Non-strict servers answer 200 with the error object.
        let e =
            decode_answer(200, br#"{"exception":"ValidationError","content":"x"}"#).unwrap_err();
        assert_eq!(e.exception(), Some("ValidationError"));
        assert!(decode_answer(503, b"<html>busy</html>")
            .unwrap_err()
            .retryable());
        assert!(decode_answer(429, b"").unwrap_err().retryable());
        assert!(matches!(
            decode_answer(200, b"nope"),
            Err(FtrackError::Protocol(_))
        ));
        assert!(matches!(
            decode_answer(200, b"{}"),
            Err(FtrackError::Protocol(_))
        ));
    }
}
