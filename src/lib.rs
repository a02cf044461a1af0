//! ldap2ftrack: converge ftrack's users, groups and security roles to what an LDAP directory
//! and sandboxed WebAssembly rule modules say they should be.
//!
//! Data flows one way: [`config`] → read (directory, ftrack) → rules → plan → guard → apply.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod apply;
pub mod caseless;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod directory;
pub mod failure;
pub mod fixtures;
pub mod ftrack;
pub mod ldap_syntax;
pub mod net;
pub mod parallel;
pub mod plan;
pub mod private_files;
pub mod progress;
pub mod rules;
pub mod run;
