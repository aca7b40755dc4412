#!/usr/bin/env bash
# Rebuild dashboards/_static/plotly-nas.min.js, the partial plotly.js the dashboard and the offline
# report load: core plus the trace types they draw (scripts/plotly-bundle/entry.js), 1.6 MB against
# the 4.8 MB of the full plotly.min.js, which a browser parses and runs in a fraction of the time.
# Only a developer runs this, after changing the traces or moving to the plotly.js version that the
# installed plotly (Python) ships (tests/test_plotly_bundle.py fails until the two agree; until then
# the dashboard falls back to the full bundle). Needs Node and npm (the npm registry); the versions
# are pinned in scripts/plotly-bundle/package-lock.json, so a rebuild gives the same bytes.
# Usage: bash scripts/build-plotly-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
(cd scripts/plotly-bundle && npm ci --no-audit --no-fund --loglevel=error)
(cd scripts/plotly-bundle && node build.js "$OLDPWD/dashboards/_static/plotly-nas.min.js")  # aliases resolve from the cwd
ls -l dashboards/_static/plotly-nas.min.js
