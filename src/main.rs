//! The `ldap2ftrack` binary; everything lives in the library so tests can drive it.

fn main() -> std::process::ExitCode {
    ldap2ftrack::cli::run()
}
