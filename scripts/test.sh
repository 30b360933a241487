#!/usr/bin/env bash
# The README's test command: set up .venv (idempotent), then run the whole default test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
python -m pytest -q "$@"
