#!/usr/bin/env bash
# Builds the Debian package, target/debian/ldap2ftrack_<version>-1_<arch>.deb (the one command
# README's "Install" section gives). cargo-deb only collects files, so first this builds the
# binary and has it write its man pages and shell completions (the hidden `ldap2ftrack
# generate` subcommand, from the clap definitions) beside it, where Cargo.toml's
# [package.metadata.deb] assets expect them.
#
#   packaging/build-deb.sh [--profile PROFILE] [--no-build] [cargo-deb options...]
#
# --profile: the Cargo profile (default release, what admins install; tests/it/package.rs packages
#   the dev build, which cargo-deb warns about). --no-build: package the binary already built
#   for that profile. Needs cargo-deb: cargo install --locked cargo-deb@3.8.0
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=yes
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=${2:?--profile needs a value, e.g. --profile release}; shift 2 ;;
    --no-build) build=no; shift ;;
    *) break ;;
  esac
done

if ! cargo deb --version >/dev/null 2>&1; then
  echo "error: cargo-deb is not installed; run: cargo install --locked cargo-deb@3.8.0" >&2
  exit 1
fi

# Where Cargo puts this profile's binary (CARGO_TARGET_DIR and .cargo/config respected).
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
case $profile in
  dev | test) profile_dir=debug ;;
  *) profile_dir=$profile ;;
esac
bin=$target_dir/$profile_dir/ldap2ftrack
# The assets' source folder: target/release/packaging in Cargo.toml, which cargo-deb maps to
# the profile's folder.
generated=$target_dir/$profile_dir/packaging

# Without the bundled ftrack emulator (the `emulator` feature, for the demo and tests): an
# `emulator:` server_url in a packaged install is a configuration error, not a fake ftrack.
if [ $build = yes ]; then
  cargo build --profile "$profile" --no-default-features --bin ldap2ftrack
elif [ ! -x "$bin" ]; then
  echo "error: $bin does not exist; build it (cargo build --profile $profile) or drop --no-build" >&2
  exit 1
fi

rm -rf "$generated"
"$bin" generate man "$generated/man" >/dev/null
gzip -9n "$generated"/man/*.1
for shell in bash zsh fish; do
  "$bin" generate completions "$shell" "$generated/completions" >/dev/null
done

cargo deb --no-build --profile "$profile" "$@"
