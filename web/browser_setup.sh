#!/usr/bin/env bash
# Idempotent headless-browser setup for the web studio's end-to-end test (CI runs as root).
#   bash web/browser_setup.sh      # install Debian's chromium + chromium-driver if missing
# The test drives /usr/bin/chromium through /usr/bin/chromedriver (selenium); no browser is
# downloaded from anywhere else. Without them tests/web/test_e2e_browser.py skips with a reason.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "browser_setup: $(chromium --version 2>/dev/null | head -n1) and chromedriver already installed" >&2
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "browser_setup: chromium / chromedriver missing; run as root or:" \
         "sudo apt-get install -y --no-install-recommends chromium chromium-driver" >&2
    exit 1
fi
echo "browser_setup: installing chromium chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "browser_setup: $(chromium --version 2>/dev/null | head -n1) ready" >&2
