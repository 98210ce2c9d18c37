#!/usr/bin/env bash
# Set up (scripts/setup.sh) and open JupyterLab on the quickstart notebook.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

extra=()
if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-root); fi
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "${extra[@]}" "$@"
