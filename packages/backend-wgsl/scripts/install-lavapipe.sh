#!/usr/bin/env bash
# Installs a Vulkan driver Dawn accepts on a machine without a GPU: Mesa 25 lavapipe from bookworm-backports
# (bookworm's own Mesa 22.3 lavapipe is refused by Dawn). Idempotent: does nothing when a Mesa >= 25
# mesa-vulkan-drivers is already installed. Needs root (or sudo). See ../shared/design/TOOLCHAIN.md.
set -euo pipefail

installed_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true
}

have_backports_mesa() {
  local v
  v="$(installed_version)"
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 25 && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'
}

if have_backports_mesa; then
  echo "install-lavapipe: mesa-vulkan-drivers $(installed_version) already installed; nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

LIST=/etc/apt/sources.list.d/backports.list
if ! grep -qs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee "$LIST" >/dev/null
fi
$SUDO apt-get update
# Not `-t bookworm-backports`: that would upgrade the whole Mesa stack.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers/bookworm-backports

if ! have_backports_mesa; then
  echo "install-lavapipe: mesa-vulkan-drivers is $(installed_version), expected >= 25 from bookworm-backports" >&2
  exit 1
fi
echo "install-lavapipe: installed mesa-vulkan-drivers $(installed_version)"
