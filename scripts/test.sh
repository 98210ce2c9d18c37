#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check: lint, types, the JS unit tests
# (which also fail on a stale committed bundle), and the whole pytest suite:
# engine units, handlers and SSE through a real Jupyter server, the kernel API,
# end-to-end tests in JupyterLab + headless Chromium, and nbval on every notebook,
# then nbval on every notebook again with no Jupyter server at all: the kernels
# start the batch server (python -m batch_widget serve), as in VS Code or a script.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== ruff";  .venv/bin/ruff check .; .venv/bin/ruff format --check .
echo "== mypy";  .venv/bin/mypy
echo "== import contracts (engine / server / kernel)"; .venv/bin/lint-imports
echo "== js";    npm test --prefix js
echo "== pytest"
.venv/bin/pytest tests notebooks --nbval -p no:cacheprovider "$@"
echo "== the notebooks again, on the batch server alone (no Jupyter server, no extension)"
BATCH_WIDGET_NBVAL=batch-server .venv/bin/pytest notebooks --nbval -p no:cacheprovider "$@"
