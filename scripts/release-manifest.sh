#!/usr/bin/env bash
# Writes manifest.json for a directory of agent binaries named
# gateway-agent-<target triple>[.exe], signing each one's sha256 the way
# `gateway-agent update` verifies it: ed25519 over the lowercase sha256 hex
# string (its ASCII bytes), base64 (standard alphabet) in `signature`.
#
#   scripts/release-manifest.sh --key KEY.pem --version 1.2.3 DIR
#
# KEY.pem is the release key's private half (PKCS#8 PEM, as written by
# `openssl genpkey -algorithm ed25519`); its public half is
# `RELEASE_PUBLIC_KEY` in gateway-agent/src/update.rs. Needs OpenSSL 3.
set -euo pipefail

key=''
version=''
dir=''
while [ $# -gt 0 ]; do
    case "$1" in
        --key) key=$2; shift 2 ;;
        --version) version=$2; shift 2 ;;
        -*) echo "release-manifest: unknown option $1" >&2; exit 2 ;;
        *) dir=$1; shift ;;
    esac
done
if [ -z "$key" ] || [ -z "$version" ] || [ -z "$dir" ]; then
    echo "usage: $0 --key KEY.pem --version X.Y.Z DIR" >&2
    exit 2
fi

msg=$(mktemp)
trap 'rm -f "$msg"' EXIT
assets=""
for bin in "$dir"/gateway-agent-*; do
    [ -f "$bin" ] || continue
    file=$(basename "$bin")
    target=${file#gateway-agent-}
    target=${target%.exe}
    sha=$(sha256sum "$bin" | cut -d ' ' -f 1)
    # Ed25519 signs the whole message at once: OpenSSL needs it in a regular file.
    printf '%s' "$sha" >"$msg"
    sig=$(openssl pkeyutl -sign -rawin -inkey "$key" -in "$msg" | base64 -w0)
    assets="${assets:+$assets,}\"$target\":{\"url\":\"$file\",\"sha256\":\"$sha\",\"signature\":\"$sig\"}"
    echo "release-manifest: signed $file ($target)" >&2
done
[ -n "$assets" ] || { echo "release-manifest: no gateway-agent-* binaries in $dir" >&2; exit 1; }
printf '{"version":"%s","assets":{%s}}\n' "$version" "$assets" > "$dir/manifest.json"
