#!/usr/bin/env bash
# Installs what the test suite needs beside the project environment; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tools/setup-tf-tools.sh ]; then bash tools/setup-tf-tools.sh; fi
