#!/usr/bin/env bash
# Installs what the engine needs from the system on Debian/Ubuntu: a Vulkan loader and Mesa's
# lavapipe (software Vulkan), so Dawn finds an adapter without a GPU; with --browser also Chromium
# for the browser tests (Debian's package; on Ubuntu, whose Chromium is a snap, name a Chromium binary
# with CHROMIUM=/path). Idempotent: does nothing when an adapter is already found. Node.js (20.19+,
# 22.12+ or 24+, with npm) must be installed already.
set -euo pipefail

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "setup-system.sh: unknown flag '$arg' (valid: --browser)" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Vite and the test runner need Node 20.19+ or 22.12+ (Debian 12's own nodejs is 18).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 24 ? 0 : 1)' 2>/dev/null; then
  echo "setup-system.sh: Node.js 20.19+, 22.12+ or 24+ (with npm) is needed; found $(node --version 2>/dev/null || echo none). Install it first (e.g. from nodejs.org or NodeSource)." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup-system.sh: needs root (or sudo) to install system packages" >&2; exit 1
  fi
fi

have_adapter() {
  [ -d "$here/../node_modules/webgpu" ] || return 1
  node "$here/probe-adapter.mjs" >/dev/null 2>&1
}

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
}
# `env` carries the setting through sudo, which resets the environment.
apt_install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; }

needs_vulkan=1
if have_adapter; then
  needs_vulkan=0
elif dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 && dpkg -s libvulkan1 >/dev/null 2>&1; then
  # Installed: Mesa 24 or later is known to work; Debian 12's own Mesa 22 is refused by Dawn.
  mesa_version="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  if dpkg --compare-versions "$mesa_version" ge 24; then needs_vulkan=0; fi
fi

if [ "$needs_vulkan" -eq 1 ]; then
  . /etc/os-release
  if [ "${ID:-}" = "debian" ] && [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
    # Debian 12's Mesa 22 lacks shaderUniform*ArrayDynamicIndexing, which Dawn requires.
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      $sudo tee /etc/apt/sources.list.d/backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt_update
    apt_install libvulkan1
    apt_install -t bookworm-backports mesa-vulkan-drivers
  else
    apt_update
    apt_install libvulkan1 mesa-vulkan-drivers
  fi
fi

if [ "$want_browser" -eq 1 ]; then
  if [ -n "${CHROMIUM:-}" ]; then
    [ -x "$CHROMIUM" ] || { echo "setup-system.sh: CHROMIUM=$CHROMIUM is not an executable file" >&2; exit 1; }
  elif [ ! -x /usr/bin/chromium ]; then
    . /etc/os-release
    if [ "${ID:-}" = "ubuntu" ]; then
      echo "setup-system.sh: Ubuntu ships Chromium only as a snap, which the browser tests cannot drive here; install a Chromium (or Chrome) build and name it with CHROMIUM=/path/to/chromium" >&2
      exit 1
    fi
    apt_update
    apt_install chromium
  fi
fi
echo "setup-system.sh: system packages ready"
