#!/usr/bin/env bash
# The whole test suite, from a fresh machine (Debian + rustup) to the last assertion.
#
# Installs what the tests need, idempotently: OpenLDAP's slapd and ldap-utils, Samba's AD DC,
# dpkg, systemd, man-db and docker-registry (apt), the wasm32-wasip2 Rust target, cargo-deb (cargo install, into ~/.cargo),
# and a Python venv (.venv) with the official ftrack-python-api client and pytest. Then runs
# every test in the workspace. Run it as root: the apt step needs it (or sudo), and so does
# the Samba domain controller, whose LDAP port is 389.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf '\n==> %s\n' "$*" >&2; }

# --- system packages --------------------------------------------------------------------
missing=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || missing+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# `script` gives the progress-bar test a pseudo-terminal.
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
# tests/it/package.rs traces a demo run (strace) to check the unit's system-call filter.
command -v strace >/dev/null 2>&1 || missing+=(strace)
# tests/it/package.rs unpacks the Debian package (dpkg-deb), checks its units and postinst with
# systemd's offline tools (systemd-analyze, -sysusers, -tmpfiles; nothing is started) and
# renders its man pages (man).
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v man >/dev/null 2>&1 || missing+=(man-db)
# tests/it/rules_registry.rs publishes and fetches rule modules through a real OCI registry (the
# CNCF distribution registry), started on a free loopback port; its packaged service is not used.
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
# tests/it/live_sync_ad.rs runs a real Active Directory domain controller (Samba's, LDAP only,
# provisioned into target/tmp and started per test on 127.0.0.1:389, which needs root). The
# AD DC needs the provisioning files and the VFS modules, which are only recommended.
samba_packages=(samba samba-dsdb-modules samba-ad-provision samba-vfs-modules winbind)
for package in "${samba_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # The packaged slapd service is not used: the tests start their own slapd on a free port.
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged Samba services are not used either; the AD DC one would want port 389.
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now samba-ad-dc >/dev/null 2>&1 || true
  fi
fi

# --- Rust -------------------------------------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  log "adding the wasm32-wasip2 target (rustup)"
  rustup target add wasm32-wasip2
fi

# cargo-deb builds the Debian package in tests/it/package.rs (packaging/build-deb.sh). Pinned;
# compiled from crates.io once (about 2 minutes on 2 cores), skipped when already installed.
cargo_deb=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb" ]; then
  log "installing cargo-deb $cargo_deb (cargo install)"
  cargo install --locked "cargo-deb@$cargo_deb"
fi

# --- Python venv for the official ftrack client -------------------------------------------
venv="$root/.venv"
stamp="$venv/.ldap2ftrack-requirements"
requirements="ftrack-python-api==3.1.0 pytest==8.3.5 componentize-py==0.25.1 ldap3==2.9.1"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$requirements" ]; then
  log "creating $venv with: $requirements"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $requirements
  echo "$requirements" > "$stamp"
fi
export LDAP2FTRACK_PYTHON="$venv/bin/python"
# The Python rules SDK, editable, so pytest imports it natively (componentize-py takes its
# source folder with -p instead). Reinstalled when it is missing, installed from another
# checkout, or its pyproject.toml changed.
sdk_stamp="$venv/.ldap2ftrack-rules-sdk"
sdk_init="$root/rules-sdk/python/src/ldap2ftrack_rules/__init__.py"
if [ "$("$venv/bin/python" -c 'import ldap2ftrack_rules; print(ldap2ftrack_rules.__file__)' 2>/dev/null)" != "$sdk_init" ] \
   || [ rules-sdk/python/pyproject.toml -nt "$sdk_stamp" ]; then
  log "pip install -e rules-sdk/python"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e rules-sdk/python
  touch "$sdk_stamp"
fi

# --- rule modules (WebAssembly components) -------------------------------------------------
# The example rules and the adversarial test modules are their own workspaces, built for
# wasm32-wasip2; tests/it/rules_wasm.rs loads the .wasm files (and fails if they are missing).
# Their unit tests run natively.
for ws in examples-rules tests/rule-modules; do
  log "cargo build --release --target wasm32-wasip2 ($ws)"
  cargo build --release --target wasm32-wasip2 --manifest-path "$ws/Cargo.toml"
done
# The Python SDK's tests (helper vectors shared with rules-sdk/tests/vectors.rs, the WIT glue)
# and the Python twin's unit tests, natively.
log "pytest (rules-sdk/python, examples-rules/studio-basics-py)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider rules-sdk/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider examples-rules/studio-basics-py
# The Python twin of studio-basics, built by componentize-py (offline) from the same WIT with
# the SDK; tests/it/example_fixtures.rs runs it on studio-basics' fixture cases. Rebuilt when
# the WIT or a Python file of the module or the SDK is newer than the component.
py_module=examples-rules/target/wasm32-wasip2/release/studio_basics_py.wasm
if [ ! -f "$py_module" ] || [ rules-sdk/wit/rules.wit -nt "$py_module" ] \
   || [ -n "$(find examples-rules/studio-basics-py rules-sdk/python/src -name '*.py' -newer "$py_module")" ]; then
  log "componentize-py (examples-rules/studio-basics-py)"
  mkdir -p "$(dirname "$py_module")"
  "$venv/bin/componentize-py" -d rules-sdk/wit -w rule componentize --stub-wasi \
    -p examples-rules/studio-basics-py -p rules-sdk/python/src app -o "$py_module"
fi
log "cargo test (examples-rules, natively)"
cargo test --manifest-path examples-rules/Cargo.toml

# --- the tests ----------------------------------------------------------------------------
log "cargo test --workspace"
cargo test --workspace "$@"
# The packaged build leaves the bundled emulator out (packaging/build-deb.sh, Containerfile):
# its configuration tests, once more without the feature (only this crate recompiles).
log "cargo test --lib --no-default-features (config, as packaged)"
cargo test --lib --no-default-features config::
