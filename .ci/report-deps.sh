#!/usr/bin/env bash
# Install the Debian packages the report tests need: headless Chromium renders report.html
# (tests/unit/test_reports_browser.py) and a font makes its screenshots legible.
# Idempotent: does nothing when everything is installed; otherwise one apt-get update and one
# install (no version pins: Debian's chromium follows security updates).
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "report-deps.sh: all report packages installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "report-deps.sh: must run as root (apt-get) to install ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "report-deps.sh: installed ${missing[*]}"
