#!/usr/bin/env bash
# One command: set up a development environment in .venv and run every quality gate and test.
#   scripts/test.sh [pytest args...]
# MODELREG_PROBE=1 also installs the probe extra (torch, diffusers, open_clip) so the probe tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
extras="dev"
if [ "${MODELREG_PROBE:-0}" = "1" ]; then extras="dev,probe"; fi
.venv/bin/pip install -q -e ".[$extras]"
echo "== ruff"; .venv/bin/ruff check $(ls -d registry cli tests bench scripts 2>/dev/null)
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
