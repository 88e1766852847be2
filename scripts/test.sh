#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), installs the headless browser the browser tests drive, then
# runs every test tier: fast unit tests, the real bundled models on seeds/ (slow), a real Gradio
# server and a real headless Chromium (browser). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Debian's Chromium, never a browser download: Playwright drives /usr/bin/chromium directly.
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "[test] installing Debian chromium for the browser tests" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

exec .venv/bin/python -m pytest -q --all "$@"
