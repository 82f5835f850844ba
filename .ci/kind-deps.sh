#!/usr/bin/env bash
# CI only: Docker and kind for the kind tests (issue 8). numacert itself never installs or starts
# a Docker daemon: users already run one. This script:
#   1. installs Debian's docker.io (and jq for the runtime wrapper below);
#   2. starts dockerd unless one answers already, with a runc wrapper as default runtime.
#      The CI VM's capability bounding set lacks CAP_SYS_RESOURCE, and kind runs every node
#      (and every `docker exec`) privileged, which asks for all capabilities: runc then fails
#      with "unable to apply caps: operation not permitted". The wrapper drops that one
#      capability from the OCI spec before handing over to the real runc. It is a property of
#      this VM, never of users' machines, so it lives here and not in the product;
#   3. builds kind from its Go module (no GitHub downloads here) into the numacert cache.
# Prints the directory holding the kind binary on its last line (.ci/run puts it on PATH).
set -euo pipefail

KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CACHE="${NUMACERT_CACHE:-$HOME/.cache/numacert}"
KIND_DIR="$CACHE/kind-bin/$KIND_VERSION"
WRAPPER=/usr/local/libexec/numacert-ci/runc-no-sys-resource
DOCKERD_LOG=/var/log/numacert-ci-dockerd.log

log() { echo "kind-deps.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get, dockerd)"
    exit 1
fi

# 1. packages -------------------------------------------------------------------------------
PACKAGES=(docker.io jq)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >/dev/null
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
        apt-get install -y --no-install-recommends -t bookworm "${missing[@]}" >/dev/null
    else
        apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
    log "installed ${missing[*]}"
fi

# 2. dockerd ----------------------------------------------------------------------------------
mkdir -p "$(dirname "$WRAPPER")"
cat >"$WRAPPER.tmp" <<'WRAP'
#!/usr/bin/env bash
# runc wrapper (numacert CI only): remove CAP_SYS_RESOURCE, which this VM cannot grant.
set -euo pipefail
strip() {
    local f="$1" key="$2"
    [ -f "$f" ] || return 0
    jq "($key) |= (if . == null then . else with_entries(.value |= (if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end)) end)" \
        "$f" >"$f.numacert-tmp" && mv "$f.numacert-tmp" "$f"
}
args=("$@")
bundle="" process="" cmd=""
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        create|run) [ -z "$cmd" ] && cmd="${args[$i]}" ;;
        exec) [ -z "$cmd" ] && cmd=exec ;;
        --bundle|-b) bundle="${args[$((i + 1))]}" ;;
        --bundle=*) bundle="${args[$i]#--bundle=}" ;;
        --process|-p) process="${args[$((i + 1))]}" ;;
        --process=*) process="${args[$i]#--process=}" ;;
    esac
done
case "$cmd" in
    create|run) strip "${bundle:-.}/config.json" .process.capabilities ;;
    exec) [ -n "$process" ] && strip "$process" .capabilities ;;
esac
exec runc "$@"
WRAP
chmod 755 "$WRAPPER.tmp" && mv "$WRAPPER.tmp" "$WRAPPER"

if docker info >/dev/null 2>&1; then
    log "dockerd already answers"
else
    log "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd --add-runtime "numacert-ci=$WRAPPER" --default-runtime numacert-ci \
        >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer in 60 s; see $DOCKERD_LOG"; tail -20 "$DOCKERD_LOG" >&2; exit 1; }
fi

# 3. kind -------------------------------------------------------------------------------------
if [ ! -x "$KIND_DIR/kind" ]; then
    log "building kind $KIND_VERSION from the Go module proxy"
    mkdir -p "$KIND_DIR"
    GOFLAGS=-mod=mod GOBIN="$KIND_DIR" go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
"$KIND_DIR/kind" version >&2
echo "$KIND_DIR"
