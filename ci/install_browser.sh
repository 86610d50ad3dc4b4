#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/test_browser_playground.py), once.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo) and the Debian archive.
# Never `playwright install`: the test drives this system browser through `executable_path`.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "[browser] /usr/bin/chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] apt-get not found: cannot install chromium on this system" >&2
  exit 2
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "[browser] not root and no password-less sudo: cannot install chromium" >&2
    exit 2
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "[browser] installing Debian's chromium with apt-get"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
test -x /usr/bin/chromium
echo "[browser] installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
