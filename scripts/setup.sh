#!/usr/bin/env bash
# Set up a development environment from a fresh clone: Debian's Chromium for the
# browser tests, a virtualenv in .venv with the package (editable) and its test
# extra, and the front end's npm packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium for the end-to-end tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

bash scripts/venv.sh test

echo "== installing the front end's npm packages"
npm ci --prefix js --no-audit --no-fund --loglevel=error
