#!/usr/bin/env bash
# Installs what the test suite needs beside the project environment; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tools/setup-tf-tools.sh ]; then bash tools/setup-tf-tools.sh; fi
# Headless Chromium for the status page's browser test (Debian package; never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
