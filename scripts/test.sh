#!/usr/bin/env bash
# One command: set up a development environment in .venv and run every quality gate and test.
#   scripts/test.sh [pytest args...]
# Every extra is installed (exhibit, hub, probe: torch, diffusers, open_clip, about 6 GB), so the tests of
# every extra run. MODELREG_PROBE=0 leaves the probe extra out (its tests then skip with a reason).
# Each step says what it does and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

step_start=0
step() {
    step_start=$(date +%s)
    echo "== $*"
}
done_step() {
    echo "   done in $(( $(date +%s) - step_start ))s"
}
total_start=$(date +%s)

extras="dev,all"
if [ "${MODELREG_PROBE:-1}" = "0" ]; then extras="dev,exhibit,hub"; fi

step "virtualenv .venv"
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
done_step

step "pip install -e .[$extras] (the probe extra downloads torch: several GB and minutes the first time)"
# one line per package pip collects, so a long download is not silence; the full log stays in .venv
set +e
.venv/bin/pip install --progress-bar off -e ".[$extras]" 2>&1 | tee .venv/pip-install.log \
    | grep --line-buffered -E '^(Collecting|Successfully installed|ERROR)'
codes=("${PIPESTATUS[@]}")
set -e
if [ "${codes[0]}" -ne 0 ]; then echo "pip install failed (log: .venv/pip-install.log)"; exit 1; fi
done_step

step "ruff"
.venv/bin/ruff check $(ls -d registry cli tests bench scripts 2>/dev/null)
done_step

step "mypy"
.venv/bin/mypy
done_step

step "pytest $*"
.venv/bin/pytest "$@"
done_step

echo "== all gates passed in $(( $(date +%s) - total_start ))s"
