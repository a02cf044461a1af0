//! LDAP's text syntaxes — distinguished names (RFC 4514) and search filters (RFC 4515) —
//! parsed without I/O.
//!
//! A leaf below `config`: loading `sync.toml` checks `ldap.user_filter`, the base DNs and the
//! bind DN with the same parsers the directory layer reads with, so a filter or DN the run
//! would refuse is refused at load time, by key, before any connection. It imports nothing
//! else of this crate; what a parsed filter *means* for an LDIF source is
//! `directory::filter`'s business.

pub mod dn;
pub mod filter;

pub use dn::{DnError, NormalizedDn};
pub use filter::{AssertionValue, Filter, FilterError};

#[cfg(test)]
mod vectors;
