#!/usr/bin/env bash
# The README's main-job command: set up .venv (idempotent; installs Debian's dataset-fashion-mnist when root),
# then train Coded ResNeXt + baseline on Fashion-MNIST, analyse, export for the Hub: output/main_job/README.md.
# Extra arguments go to the job (python -m train_hooks.main_job --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
python -m train_hooks.main_job "$@"
