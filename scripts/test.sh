#!/usr/bin/env bash
# Runs every test of the project: installs the third-party test peers into
# git-ignored folders, builds every binary, then runs the whole workspace's
# tests (unit, integration, third-party peers, conformance, the dashboard's
# unit tests and its browser tests).
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

# The dashboard's browser tests drive Debian's Chromium (playwright-core does
# not download browsers here).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "test.sh: could not install chromium; the dashboard's browser tests will say they skipped" >&2
fi

# The dashboard's locked packages (its build is embedded by the hub; the
# browser tests use playwright-core and axe-core from here), then its unit tests.
(cd dashboard && npm ci --no-audit --no-fund && npm test)

# Peers are installed: tests that need them must not skip.
export GATEHOUSE_REQUIRE_PEERS=1

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
