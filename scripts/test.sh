#!/usr/bin/env bash
# One command: set up a development environment in .venv and run every quality gate and test.
#   scripts/test.sh [pytest args...]
# The probe extra (torch, diffusers, open_clip; about 6 GB) is installed too, so the probe tests run;
# MODELREG_PROBE=0 skips it (the probe tests then skip with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
extras="dev,probe"
if [ "${MODELREG_PROBE:-1}" = "0" ]; then extras="dev"; fi
.venv/bin/pip install -q -e ".[$extras]"
echo "== ruff"; .venv/bin/ruff check $(ls -d registry cli tests bench scripts 2>/dev/null)
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest "$@"
