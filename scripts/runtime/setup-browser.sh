#!/usr/bin/env bash
# Installs what the browser check (test/browser: /docs in headless Chromium via playwright-core) needs:
# Debian's chromium at /usr/bin/chromium. playwright-core never downloads a browser of its own. Idempotent;
# run as root on Debian bookworm (CI, the dev machines).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-browser: chromium missing; run as root: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
echo "setup-browser: installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
