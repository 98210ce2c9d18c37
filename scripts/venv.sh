#!/usr/bin/env bash
# Create .venv (once) and install batch_widget into it, editable, with the extra
# named by $1 (`lab` for running the product, `test` for the test suite).
# Used by scripts/lab.sh and scripts/setup.sh. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:?usage: scripts/venv.sh <extra>}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "== installing batch_widget[$extra] into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[$extra]"
