#!/usr/bin/env bash
# The README's test command: set up .venv (idempotent) and run the whole default test suite, then the XLA lane:
# build .venv-xla (torch 2.9.0 + torch_xla 2.9.0, idempotent, scripts/xla_env.sh) and run tests/xla in it on
# XLA:CPU (PJRT_DEVICE=CPU). The command fails if either part fails.
#   bash scripts/test.sh                 everything (CI)
#   bash scripts/test.sh ARGS...         main suite with these pytest args only (TIMM_CODED_XLA=1: XLA lane too)
#   TIMM_CODED_XLA=0 bash scripts/test.sh   main suite only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
main_rc=0
python -m pytest -q "$@" || main_rc=$?

if [ $# -eq 0 ]; then xla_default=1; else xla_default=0; fi
if [ "${TIMM_CODED_XLA:-$xla_default}" = "1" ]; then
  echo "[test] XLA lane: tests/xla in ${TIMM_CODED_XLA_VENV:-$ROOT/.venv-xla} with PJRT_DEVICE=CPU" >&2
  bash "$ROOT/scripts/xla_env.sh"
  xla_rc=0
  PJRT_DEVICE=CPU TIMM_CODED_REQUIRE_XLA=1 "${TIMM_CODED_XLA_VENV:-$ROOT/.venv-xla}/bin/python" \
    -m pytest -q -p no:cacheprovider tests/xla || xla_rc=$?
  if [ "$xla_rc" -ne 0 ]; then
    echo "[test] XLA lane failed (exit $xla_rc)" >&2
    [ "$main_rc" -ne 0 ] || main_rc=$xla_rc
  fi
fi
exit "$main_rc"
