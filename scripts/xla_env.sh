#!/usr/bin/env bash
# Idempotent set-up of the XLA virtualenv (.venv-xla): torch 2.9.0 + torchvision 0.24.0 + torch_xla 2.9.0 and
# timm-coded with its pinned deps (constraints-xla.txt). torch_xla pins torch exactly, so it cannot share .venv.
# Used by scripts/test.sh for the XLA test lane (tests/xla, PJRT_DEVICE=CPU); a second run only compares a stamp.
# Run it (`bash scripts/xla_env.sh`) or source it (puts .venv-xla/bin first on PATH).
# Like scripts/env.sh, the install runs in a subshell with strict options, so sourcing leaves the caller's shell alone.
XLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XLA_VENV="${TIMM_CODED_XLA_VENV:-$XLA_ROOT/.venv-xla}"
(
set -euo pipefail
ROOT="$XLA_ROOT"
XLA_PY="${PYTHON:-python3}"
XLA_STAMP="$XLA_VENV/.timm-coded-xla-stamp"
xla_want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/constraints-xla.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$XLA_VENV/bin/python" ]; then
  echo "[xla-env] creating virtualenv $XLA_VENV" >&2
  "$XLA_PY" -m venv "$XLA_VENV"
fi
if [ "$(cat "$XLA_STAMP" 2>/dev/null)" != "$xla_want" ]; then
  echo "[xla-env] installing torch_xla 2.9.0 + timm-coded (constraints-xla.txt) into $XLA_VENV (~4 GB first time)" >&2
  "$XLA_VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$XLA_VENV/bin/python" -m pip install -q -c "$ROOT/constraints-xla.txt" \
    torch torchvision torch_xla -e "$ROOT[test]" >&2
  "$XLA_VENV/bin/python" -c "import torch, torch_xla, timm; print('[xla-env] torch', torch.__version__, \
'torch_xla', torch_xla.__version__, 'timm', timm.__version__)" >&2
  echo "$xla_want" > "$XLA_STAMP"
fi
) || { echo "[xla-env] set-up of $XLA_VENV failed (see above)" >&2; return 1 2>/dev/null || exit 1; }
if [ "${BASH_SOURCE[0]}" != "$0" ]; then  # sourced: activate
  export PATH="$XLA_VENV/bin:$PATH"
  export VIRTUAL_ENV="$XLA_VENV"
fi
