#!/usr/bin/env bash
# Rebuild the example report and its screenshot shown in the README (needs Chromium).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
specplan report --target llama-3.1-70b --gpu h100-sxm --gpus 4 --top 8 -o docs/example-report.html --force
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1100,2150 --screenshot=docs/example-report.png "file://$PWD/docs/example-report.html" 2>/dev/null
rm -rf "$profile"
