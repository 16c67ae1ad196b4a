#!/bin/sh
# Installs gateway-agent from a Gatehouse hub and sets it up.
#
#   curl -fsSL https://HUB/install.sh | sh
#   curl -fsSL https://HUB/install.sh | GATEHOUSE_AGENT_TOKEN=ga_... sh -s -- --non-interactive --name laptop
#
# Options:
#   --hub URL            the hub to install from and connect to (default: the hub that served this script)
#   --name NAME          the agent's name, as enrolled on the hub
#   --token TOKEN        the agent token (prefer the GATEHOUSE_AGENT_TOKEN variable: argv is visible to others)
#   --non-interactive    never prompt (needs --name and a token)
#   --no-setup           only install the binary
#   --no-modify-path     do not add the install directory to the shell's startup file
#   --insecure           allow a plain http:// hub that is not on this machine
#
# The binary goes to ${XDG_BIN_HOME:-$HOME/.local/bin}/gateway-agent. Its
# sha256 comes from the hub's release manifest and is checked before the
# binary is installed; without sha256sum or shasum nothing is installed.
#
# Everything below is in functions and `main` runs on the last line, so a
# download cut short runs nothing at all.

# The hub this script was served by (filled in by the hub).
GATEHOUSE_HUB_URL=...

MARKER="# added by the Gatehouse agent installer"

say() {
    printf 'gatehouse: %s\n' "$*" >&2
}

die() {
    printf 'gatehouse: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,16p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
}

has() {
    command -v "$1" >/dev/null 2>&1
}

# The release target of this machine, as the manifest names builds.
detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    case "$arch" in
        x86_64 | amd64) arch=x86_64 ;;
        aarch64 | arm64) arch=aarch64 ;;
        *) die "unsupported processor: $arch (builds exist for x86_64 and aarch64)" ;;
    esac
    case "$os" in
        Linux)
            if is_musl; then
                printf '%s-unknown-linux-musl\n' "$arch"
            else
                printf '%s-unknown-linux-gnu\n' "$arch"
            fi
            ;;
        Darwin)
            # An x86_64 shell under Rosetta on Apple silicon: install the native build.
            if [ "$arch" = x86_64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = 1 ]; then
                arch=aarch64
            fi
            printf '%s-apple-darwin\n' "$arch"
            ;;
        *) die "unsupported system: $os (use install.ps1 on Windows)" ;;
    esac
}

is_musl() {
    for f in /lib/ld-musl-*; do
        [ -e "$f" ] && return 0
    done
    if has ldd; then
        case "$(ldd --version 2>&1)" in
            *musl*) return 0 ;;
        esac
    fi
    return 1
}

# download URL FILE
download() {
    if has curl; then
        curl -fsSL --retry 2 -o "$2" "$1"
    elif has wget; then
        wget -q -O "$2" "$1"
    else
        die "neither curl nor wget is installed"
    fi
}

# The sha256 of FILE, lowercase hex; fails when no tool can compute it.
sha256_of() {
    if has sha256sum; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif has shasum; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    else
        return 1
    fi
}

# asset_field MANIFEST TARGET FIELD: the string FIELD of the asset for TARGET.
# Asset objects hold only strings, so the first `}` after the target closes it.
asset_field() {
    tr -d '\n\r\t' <"$1" |
        sed -n "s/.*\"$2\"[ ]*:[ ]*{\\([^}]*\\)}.*/\\1/p" |
        sed -n "s/.*\"$3\"[ ]*:[ ]*\"\\([^\"]*\\)\".*/\\1/p"
}

manifest_version() {
    tr -d '\n\r\t' <"$1" | sed -n 's/.*"version"[ ]*:[ ]*"\([^"]*\)".*/\1/p'
}

# The asset URL, resolved against the manifest's location.
resolve_url() {
    case "$1" in
        http://* | https://*) printf '%s\n' "$1" ;;
        /*) printf '%s%s\n' "$(printf '%s' "$HUB" | sed 's|^\([a-z]*://[^/]*\).*|\1|')" "$1" ;;
        *) printf '%s/agent/releases/%s\n' "$HUB" "$1" ;;
    esac
}

check_hub() {
    if [ -z "$HUB" ] || [ "$HUB" = "..." ]; then
        die "no hub URL: pass --hub https://your-hub"
    fi
    HUB=$(printf '%s' "$HUB" | sed 's|/*$||')
    case "$HUB" in
        https://*) ;;
        http://127.* | http://localhost | http://localhost:* | http://\[::1\]*) ;;
        http://*)
            [ "$INSECURE" = 1 ] || die "refusing plain http to $HUB: use https, or pass --insecure if you really mean it"
            say "warning: installing over plain http (--insecure)"
            ;;
        *) die "the hub URL must start with https:// or http://" ;;
    esac
}

install_binary() {
    bindir="${XDG_BIN_HOME:-$HOME/.local/bin}"
    target=$(detect_target)
    mkdir -p "$bindir" || die "cannot create $bindir"
    work=$(mktemp -d 2>/dev/null || mktemp -d -t gatehouse) || die "cannot create a temporary directory"
    # Removes the downloads however the script ends.
    trap 'rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
    say "fetching the release manifest from $HUB"
    download "$HUB/agent/releases/manifest.json" "$work/manifest.json" || die "cannot fetch $HUB/agent/releases/manifest.json"
    version=$(manifest_version "$work/manifest.json")
    url=$(asset_field "$work/manifest.json" "$target" url)
    want=$(asset_field "$work/manifest.json" "$target" sha256 | tr 'A-F' 'a-f')
    [ -n "$url" ] || die "release ${version:-?} has no build for $target"
    case "$want" in
        *[!0-9a-f]* | "") die "the manifest has no valid sha256 for $target" ;;
    esac
    [ "${#want}" -eq 64 ] || die "the manifest has no valid sha256 for $target"
    url=$(resolve_url "$url")
    say "downloading gateway-agent ${version:-} for $target"
    download "$url" "$work/gateway-agent" || die "cannot download $url"
    got=$(sha256_of "$work/gateway-agent") || die "neither sha256sum nor shasum is installed: cannot verify the download, so nothing was installed"
    if [ "$got" != "$want" ]; then
        die "checksum mismatch for $url (expected $want, got $got): nothing was installed"
    fi
    # Atomic: a temporary file in the same directory, renamed over the old binary.
    tmp="$bindir/.gateway-agent.$$"
    cp "$work/gateway-agent" "$tmp" || die "cannot write to $bindir"
    chmod 0755 "$tmp" || die "cannot make $tmp executable"
    mv -f "$tmp" "$bindir/gateway-agent" || {
        rm -f "$tmp"
        die "cannot install $bindir/gateway-agent"
    }
    say "installed $bindir/gateway-agent (sha256 $got)"
    BIN="$bindir/gateway-agent"
}

# Adds the install directory to PATH in the user's shell startup file, once.
add_to_path() {
    case ":$PATH:" in
        *":$bindir:"*) return 0 ;;
    esac
    [ "$MODIFY_PATH" = 1 ] || {
        say "add $bindir to your PATH to run gateway-agent"
        return 0
    }
    case "${SHELL:-}" in
        */zsh) rc="${ZDOTDIR:-$HOME}/.zshrc"; line="export PATH=\"$bindir:\$PATH\"" ;;
        */bash) rc="$HOME/.bashrc"; line="export PATH=\"$bindir:\$PATH\"" ;;
        */fish) rc="$HOME/.config/fish/config.fish"; line="fish_add_path \"$bindir\"" ;;
        *) rc="$HOME/.profile"; line="export PATH=\"$bindir:\$PATH\"" ;;
    esac
    if [ -f "$rc" ] && grep -qF "$MARKER" "$rc"; then
        return 0
    fi
    mkdir -p "$(dirname "$rc")"
    printf '\n%s\n%s\n' "$MARKER" "$line" >>"$rc" || {
        say "could not update $rc: add $bindir to your PATH yourself"
        return 0
    }
    say "added $bindir to PATH in $rc (open a new shell to use it)"
}

run_setup() {
    if [ "$NON_INTERACTIVE" = 1 ]; then
        [ -n "$NAME" ] || die "--non-interactive needs --name"
        [ -n "$TOKEN" ] || die "--non-interactive needs a token: set GATEHOUSE_AGENT_TOKEN (or pass --token)"
        set -- setup --hub "$HUB" --name "$NAME" --non-interactive --token-stdin
        [ "$INSECURE" = 1 ] && set -- "$@" --insecure
        # The token goes through a pipe, never the command line.
        printf '%s\n' "$TOKEN" | "$BIN" "$@"
        return
    fi
    set -- setup --hub "$HUB"
    [ -n "$NAME" ] && set -- "$@" --name "$NAME"
    [ "$INSECURE" = 1 ] && set -- "$@" --insecure
    if [ -n "$TOKEN" ]; then
        printf '%s\n' "$TOKEN" | "$BIN" "$@" --token-stdin
        return
    fi
    # Piped into sh, stdin is the script: the questions go to the terminal.
    if ! (: </dev/tty) 2>/dev/null; then
        die "no terminal to ask questions on: rerun with --non-interactive --name NAME and GATEHOUSE_AGENT_TOKEN set, or run \`$BIN setup\` later"
    fi
    "$BIN" "$@" </dev/tty
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --hub) [ $# -ge 2 ] || die "--hub needs a value"; HUB=$2; shift 2 ;;
            --hub=*) HUB=${1#--hub=}; shift ;;
            --name) [ $# -ge 2 ] || die "--name needs a value"; NAME=$2; shift 2 ;;
            --name=*) NAME=${1#--name=}; shift ;;
            --token) [ $# -ge 2 ] || die "--token needs a value"; TOKEN=$2; shift 2 ;;
            --token=*) TOKEN=${1#--token=}; shift ;;
            --non-interactive) NON_INTERACTIVE=1; shift ;;
            --no-setup) SETUP=0; shift ;;
            --no-modify-path) MODIFY_PATH=0; shift ;;
            --insecure) INSECURE=1; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option: $1 (see --help)" ;;
        esac
    done
}

main() {
    HUB=$GATEHOUSE_HUB_URL
    NAME=
    TOKEN=${GATEHOUSE_AGENT_TOKEN:-}
    NON_INTERACTIVE=0
    SETUP=1
    MODIFY_PATH=1
    INSECURE=0
    BIN=
    parse_args "$@"
    [ -n "${HOME:-}" ] || die "HOME is not set"
    check_hub
    install_binary
    add_to_path
    if [ "$SETUP" = 1 ]; then
        run_setup || die "setup did not finish: run \`$BIN setup\` to try again"
        say "done: start the agent with \`$BIN run\` (or \`$BIN service install\`)"
    else
        say "done: run \`$BIN setup\` to connect it to $HUB"
    fi
}

main "$@"
