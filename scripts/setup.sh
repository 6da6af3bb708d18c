#!/usr/bin/env bash
# Set up duplex-steer on a fresh Debian machine: system packages, then a .venv in the repo root.
# Usage: bash scripts/setup.sh [--test]   (--test adds what the test suite needs: chromium for the demo's browser test)
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Speech engines for the ZBB renderings (zbb build --tts ...): espeak-ng, flite, festival with two voices.
apt_pkgs=(espeak-ng flite festival festvox-us-slt-hts festvox-kallpc16k)
[ "$want_test" = 1 ] && apt_pkgs+=(chromium)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
  echo "[setup] installing Debian packages: ${missing[*]}"
  wait_lock=(-o DPkg::Lock::Timeout=300)  # another apt run (e.g. unattended upgrades) holds the lock: wait
  $sudo_cmd apt-get "${wait_lock[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get "${wait_lock[@]}" install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.duplex-steer-installed
pip_log=.venv/pip-install.log
# pip's output (progress, build-backend notices, "Location ... is ignored" for local indexes that lack a
# package) goes to the log; on failure the log is shown, less those notices, and the set-up stops.
quiet_pip() {
  if ! .venv/bin/python -m pip "$@" >>"$pip_log" 2>&1; then
    echo "[setup] pip $* failed; the end of $pip_log:" >&2
    grep -v "^WARNING: Location '.*' is ignored" "$pip_log" | tail -n 40 >&2
    exit 1
  fi
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing Python packages into .venv (first run: several minutes; log: $pip_log)"
  : >"$pip_log"
  quiet_pip install --upgrade pip
  quiet_pip install -e ".[dev]"
  touch "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import duplex_steer; print("duplex-steer", duplex_steer.__version__)')"
