//! `ldap2ftrack check`: validate the configuration and report what each side looks like.

use crate::cli::{Failure, OutputFormat};
use crate::config::Config;

pub fn run(config: &Config, output: OutputFormat) -> Result<(), Failure> {
    let _ = (config, output);
    Err(Failure::not_built("check"))
}
