#!/usr/bin/env bash
# Set up what running the product needs and open JupyterLab on the quickstart
# notebook: a virtualenv in .venv with batch_widget (editable) and its `lab`
# extra (JupyterLab and a kernel). No root, no browser, no npm: the widget's
# bundle is committed. Safe to run again. Extra arguments go to `jupyter lab`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing batch_widget[lab] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[lab]"
.venv/bin/jupyter server extension list 2>&1 | grep -E "batch_widget" || {
  echo "batch_widget is not enabled in this Jupyter: see README.md, Install" >&2
  exit 1
}

extra=()
if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-root); fi
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "${extra[@]}" "$@"
