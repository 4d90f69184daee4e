#!/usr/bin/env bash
# Debian's Chromium serves the browser tests (the UI and the authorize page of `tailor connect`), driven
# by playwright-core with its executable path: no browser download. Installed only when missing; quiet.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
  exit 1
fi
echo "installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
command -v chromium >/dev/null
