#!/usr/bin/env bash
# The README's main-job command: set up .venv (idempotent), then run the main job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
python -m timm_coded.codes --list
