#!/usr/bin/env bash
# One command: set up modelreg in .venv and run the main job on the shipped example models.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/modelreg ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q .
fi
export MODELREG_DB="${MODELREG_DB:-$PWD/.demo/registry.duckdb}"
mkdir -p "$(dirname "$MODELREG_DB")"
echo "\$ modelreg scan examples/models"
.venv/bin/modelreg scan examples/models || true
echo
echo "\$ modelreg ls"
.venv/bin/modelreg ls
echo
echo "\$ modelreg show portrait_style_v1.safetensors"
.venv/bin/modelreg show portrait_style_v1.safetensors
