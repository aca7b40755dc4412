#!/usr/bin/env bash
# The dashboard tests drive a real headless browser: Debian's chromium and chromium-driver
# (/usr/bin/chromium, /usr/bin/chromedriver). Install them when missing and allowed to (root or sudo).
# Without them the browser tests skip, unless NAS_REQUIRE_BROWSER=1 (CI), where they fail.
set -uo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "ensure-chromium: not root and no sudo; the browser tests will skip (apt-get install chromium chromium-driver)" >&2
    exit 0
fi
echo "ensure-chromium: installing Debian's chromium and chromium-driver for the dashboard tests"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1
    $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null || {
        echo "ensure-chromium: apt-get could not install chromium chromium-driver" >&2
        exit 0
    }
fi
