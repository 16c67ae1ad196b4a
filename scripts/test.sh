#!/usr/bin/env bash
# Runs every test of the project: installs the third-party test peers into
# git-ignored folders, builds every binary, then runs the whole workspace's
# tests (unit, integration, third-party peers, conformance).
#
# PostgreSQL / Redis tests run when GATEHOUSE_TEST_POSTGRES_URL /
# GATEHOUSE_TEST_REDIS_URL are set, and say loudly that they skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-peers.sh

# shellcheck lints install.sh in the hub's tests (Debian's package).
if ! command -v shellcheck >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q shellcheck >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q shellcheck >/dev/null 2>&1; } \
        || echo "test.sh: could not install shellcheck; the install.sh lint will say it skipped" >&2
fi

# Peers are installed: tests that need them must not skip.
export GATEHOUSE_REQUIRE_PEERS=1

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
