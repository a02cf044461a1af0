//! The ftrack error object (`{exception, content, error_code}`) and the HTTP status each
//! kind of error maps to in strict mode.

use serde_json::{json, Value};

/// An error reported to the client as one error object replacing the result list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// ftrack exception name, e.g. `ValidationError`.
    pub exception: &'static str,
    /// Human-readable message.
    pub content: String,
    /// HTTP status used when the status must signal the error (strict mode, auth, faults).
    pub status: u16,
    /// The content reproduces a real server's message and is sent exactly as is: no
    /// `operation N (…)` prefix, no rollback hint.
    pub verbatim: bool,
}

impl ApiError {
    pub fn new(exception: &'static str, status: u16, content: impl Into<String>) -> ApiError {
        ApiError {
            exception,
            content: content.into(),
            status,
            verbatim: false,
        }
    }
    pub fn validation(content: impl Into<String>) -> ApiError {
        ApiError::new("ValidationError", 400, content)
    }
    pub fn duplicate(content: impl Into<String>) -> ApiError {
        ApiError::new("DuplicateEntryError", 409, content)
    }
    pub fn not_found(content: impl Into<String>) -> ApiError {
        ApiError::new("NoResultFoundError", 404, content)
    }
    /// `NotFoundError` (404), what ftrack answers for a role action on a role the user
    /// does not hold.
    pub fn not_found_error(content: impl Into<String>) -> ApiError {
        ApiError::new("NotFoundError", 404, content)
    }
    pub fn parse(content: impl Into<String>) -> ApiError {
        ApiError::new("ParseError", 400, content)
    }
    pub fn credentials(content: impl Into<String>) -> ApiError {
        ApiError::new("InvalidCredentialsError", 401, content)
    }
    pub fn server(content: impl Into<String>) -> ApiError {
        ApiError::new("ServerError", 500, content)
    }
    /// Mark the content as a real server's message, to be sent unchanged.
    pub fn verbatim(mut self) -> ApiError {
        self.verbatim = true;
        self
    }
    /// Prefix the message with where it happened (e.g. the operation index), unless it
    /// is [`ApiError::verbatim`].
    pub fn context(mut self, ctx: impl AsRef<str>) -> ApiError {
        if !self.verbatim {
            self.content = format!("{}: {}", ctx.as_ref(), self.content);
        }
        self
    }
    /// The wire error object.
    pub fn to_json(&self) -> Value {
        json!({"exception": self.exception, "content": self.content, "error_code": null})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception, self.content)
    }
}

impl std::error::Error for ApiError {}
