#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) from Debian bookworm-backports: Debian 12's own Mesa 22
# is refused by Dawn, Mesa 25 works. Idempotent.
set -euo pipefail
if dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[5-9]|[3-9][0-9])'; then exit 0; fi
if [ ! -f /etc/apt/sources.list.d/backports.list ]; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list
fi
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
