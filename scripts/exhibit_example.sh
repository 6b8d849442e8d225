#!/usr/bin/env bash
# Regenerate docs/exhibit-report-page1.png: an exhibit of an example model, first page of its PDF.
#   scripts/exhibit_example.sh            (needs modelreg installed, weasyprint + Pango, pdftoppm)
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export MODELREG_DB="$work/registry.duckdb"
modelreg="${MODELREG:-modelreg}"
$modelreg scan examples/models >/dev/null || true
$modelreg exhibit portrait_style_v1.safetensors -o "$work/exhibit" --key "$work/signer.pem" --generate-key \
  --issuer "Example Lab (documentation)"
$modelreg verify "$work/exhibit" --model examples/models/loras/portrait_style_v1.safetensors
pdftoppm -r 60 -gray -png -f 1 -l 1 -singlefile "$work/exhibit/report.pdf" docs/exhibit-report-page1
ls -l docs/exhibit-report-page1.png
