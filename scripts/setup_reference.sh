#!/usr/bin/env bash
# Build the REFERENCE environment for benchmarks/reference_speed.py: kyutai `moshi` 0.2.13 on torch 2.9.1,
# in its own virtual environment OUTSIDE the repository. It is never a dependency of duplex-steer and is
# never committed; only the benchmark talks to it, through a subprocess.
#
#   bash scripts/setup_reference.sh              # -> ${DUPLEX_STEER_REFENV:-/work/refenv-2.9}
#   DUPLEX_STEER_REFENV=/opt/refenv bash scripts/setup_reference.sh
#   bash scripts/setup_reference.sh --no-deps    # fallback: moshi 0.2.13 (--no-deps) on the project's torch
#
# On x86_64 PyPI's torch 2.9.1 is the CUDA build: its wheel is 900 MB and its nvidia-* dependencies add
# a few GB more (it runs on the CPU all the same). Where that is too much, --no-deps installs only moshi
# and its small pure-Python needs; the benchmark then runs the reference code on the PROJECT's torch
# (found through the project's .venv) and labels its results "reference code on torch <version>".
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REFENV="${DUPLEX_STEER_REFENV:-/work/refenv-2.9}"
PYTHON="${PYTHON:-python3.11}"
MODE="full"
for arg in "$@"; do
    case "$arg" in
        --no-deps) MODE="no-deps" ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup_reference.sh: unknown option $arg (use --no-deps or --help)" >&2; exit 2 ;;
    esac
done
case "$REFENV" in
    "$REPO"|"$REPO"/*) echo "setup_reference.sh: $REFENV is inside the repository; choose a path outside it" >&2; exit 2 ;;
esac
command -v "$PYTHON" >/dev/null || PYTHON=python3

"$PYTHON" -m venv "$REFENV"
PIP=("$REFENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
start=$SECONDS
if [ "$MODE" = full ]; then
    # moshi 0.2.13 with its own dependencies (torch 2.9.1 among them: moshi asks for torch<2.10)
    "${PIP[@]}" "torch==2.9.1" "moshi==0.2.13"
else
    # moshi's code only; torch (and numpy) come from the project's venv at run time
    "${PIP[@]}" --no-deps "moshi==0.2.13" "einops>=0.7,<0.9" "sentencepiece>=0.2,<0.3"
    echo "torch from: $REPO/.venv (benchmarks/reference_speed.py adds its site-packages after the reference's)" \
        > "$REFENV/DUPLEX_STEER_NO_DEPS"
fi
echo "setup_reference.sh: $MODE reference environment ready in $REFENV ($((SECONDS - start)) s, $(du -sh "$REFENV" | cut -f1))"
"$REFENV/bin/python" - <<'PY' || true
import importlib.metadata as m
for name in ("moshi", "torch"):
    try:
        print(f"  {name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"  {name}: not in this environment")
PY
