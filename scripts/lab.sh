#!/usr/bin/env bash
# Set up what running the product needs and open JupyterLab on the quickstart
# notebook: a virtualenv in .venv with batch_widget (editable) and its `lab`
# extra (JupyterLab and a kernel). No root, no browser, no npm: the widget's
# bundle is committed. Safe to run again. Extra arguments go to `jupyter lab`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/venv.sh lab
# (The list is read whole first: `grep -q` stopping early would fail the pipe.)
extensions="$(.venv/bin/jupyter server extension list 2>&1)"
if grep -qE "batch_widget.*enabled" <<<"$extensions"; then
  echo "== the batch_widget server extension is enabled"
else
  echo "batch_widget is not enabled in this Jupyter: see README.md, Install" >&2
  exit 1
fi

extra=()
if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-root); fi
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "${extra[@]}" "$@"
