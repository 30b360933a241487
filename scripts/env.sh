#!/usr/bin/env bash
# Idempotent set-up of the project's virtualenv (.venv) with the pinned stack of constraints.txt, then
# puts it first on PATH. Sourced by scripts/main.sh and scripts/test.sh (and usable from a shell:
# `source scripts/env.sh`; it leaves the caller's shell options alone). A second run only compares a stamp.
TIMM_CODED_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TIMM_CODED_VENV:-$TIMM_CODED_ROOT/.venv}"
(
  set -euo pipefail
  ROOT="$TIMM_CODED_ROOT"
  PY="${PYTHON:-python3}"
  STAMP="$VENV/.timm-coded-stamp"
  want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[env] creating virtualenv $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "[env] installing timm-coded and the pinned stack (constraints.txt) into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[test,plots]" >&2
    echo "$want" > "$STAMP"
  fi
  # Real data for the tests and the main job: Debian's Fashion-MNIST package, when we may install it.
  if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$(id -u)" = 0 ] \
     && command -v apt-get >/dev/null 2>&1; then
    echo "[env] installing Debian package dataset-fashion-mnist" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >&2 \
      || echo "[env] could not install dataset-fashion-mnist; real-data steps will say what to install" >&2
  fi
) || { echo "[env] set-up of $VENV failed (see above)" >&2; return 1 2>/dev/null || exit 1; }
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
