#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (the HTML report, the WebGPU example page), driven by
# playwright-core with executablePath=/usr/bin/chromium. Never `npx playwright install`: it downloads a browser.
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "install-chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed; nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

if [ ! -x /usr/bin/chromium ]; then
  echo "install-chromium: apt-get installed chromium but /usr/bin/chromium is missing" >&2
  exit 1
fi
echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null)"
