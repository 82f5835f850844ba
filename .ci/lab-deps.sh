#!/usr/bin/env bash
# Install the Debian packages the numacert lab needs (see numacert/lab/hostdeps.py).
# Idempotent: does nothing when everything is installed; otherwise one apt-get update and one
# install. Versions are pinned to Debian bookworm's where practical (the suite, not exact
# versions: bookworm point releases and security updates replace exact versions).
set -euo pipefail

PACKAGES=(qemu-system-x86 qemu-utils mmdebstrap umoci busybox-static openssh-client e2fsprogs)

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-deps.sh: must run as root (apt-get)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "lab-deps.sh: all lab packages installed"
    exit 0
fi

. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
apt-get update
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # -t bookworm keeps the packages on bookworm's versions when backports are configured.
    apt-get install -y --no-install-recommends -t bookworm "${missing[@]}"
else
    echo "lab-deps.sh: warning: host is ${VERSION_CODENAME:-unknown}, not bookworm; installing its versions" >&2
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "lab-deps.sh: installed ${missing[*]}"
