//! The ftrack query language: [`lexer`] → [`parser`] (AST) → [`eval`] (against the store).

pub mod eval;
pub mod lexer;
pub mod parser;

pub use eval::{execute, render_full, render_with, QueryCache, QueryPage};
pub use parser::parse;
