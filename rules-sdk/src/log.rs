//! The host's log. In a module, messages go to ldap2ftrack's log tagged with the module's
//! name; in native tests they are kept for [`crate::testing::take_logs`].

use crate::LogLevel;

/// Log a message at a level.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::ldap2ftrack::rules::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_log(level, message);
}

/// Log at trace level.
pub fn trace(message: &str) {
    log(LogLevel::Trace, message)
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// Log at info level.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// Log at error level.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}
