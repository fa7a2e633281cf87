#!/usr/bin/env bash
# Installs the studio with its test extras from the lock (scripts/install.sh test: a virtual
# environment checked against lock/test.txt, built anew when it differs) and Debian's Chromium
# (for the browser tests), then runs the whole test suite in that environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
venv="${STUDIO_VENV:-$PWD/.venv}"
if ! command -v chromium >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
# The suite's subprocesses (accelerate, studio) are found on PATH.
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
