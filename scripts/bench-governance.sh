#!/usr/bin/env bash
# What governance costs: tools/call throughput and latency through a hub with
# policy rules, rate limits and the audit log on, against the same hub with
# authentication only, in one run. See BENCHMARKS.md ("Governance").
#
#   bash scripts/bench-governance.sh
#
# Two hubs (same binary, same backend: the fixture's stateless echo over HTTP)
# are measured in alternation, ROUNDS times each, so drift on a shared machine
# hits both alike; the verdict uses the median of the per-round ratios.
#
# Knobs (environment):
#   BENCH_ROUNDS         alternating rounds                     (default 3)
#   BENCH_TPUT_SECS      measured seconds per throughput phase  (default 5)
#   BENCH_LAT_REQUESTS   measured calls per latency phase       (default 5000)
#   BENCH_CONCURRENCY    clients in the throughput phases       (default 64)
#   BENCH_SKIP_BUILD=1   use the release binaries already built
#   BENCH_OUT_DIR        where the JSON goes                    (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${BENCH_ROUNDS:-3}
TPUT_SECS=${BENCH_TPUT_SECS:-5}
LAT_REQUESTS=${BENCH_LAT_REQUESTS:-5000}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
OUT_DIR=${BENCH_OUT_DIR:-results}
# Target (issue: "the full pipeline costs <= 10 % throughput").
TARGET_RATIO=0.90

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building release binaries" >&2
    cargo build --release -p gateway-server -p gatehouse-test-support --bins >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-gov.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/gatehouse-fixture" --http --json-only --listen 127.0.0.1:0 >"$TMP/fixture.out" 2>"$TMP/fixture.err" &
PIDS+=("$!")
FIXTURE_URL=$(wait_for_line "$TMP/fixture.out" 'http://127\.0\.0\.1:[0-9]+/mcp' 10) || die "the fixture did not start"

# start_hub NAME EXTRA_TOML: starts a hub, sets HUB_URL_<NAME>, KEY_<NAME>, PID_<NAME>.
start_hub() {
    local name=$1 extra=$2
    cat >"$TMP/$name.toml" <<TOML
[server]
listen = "127.0.0.1:0"

[database]
url = "sqlite://$TMP/$name.db"

[[backends]]
name = "echo"
transport = "http"
url = "$FIXTURE_URL"

$extra
TOML
    local key url
    key=$("$BIN/gateway-server" keys create --config "$TMP/$name.toml" --user bench --name bench 2>"$TMP/$name-keys.err" | tail -n1)
    [[ $key == gk_* ]] || die "keys create printed no key for $name"
    "$BIN/gateway-server" serve --config "$TMP/$name.toml" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=("$!")
    printf -v "PID_$name" '%s' "$!"
    url=$(wait_for_line "$TMP/$name.out" 'listening on http://[0-9.]+:[0-9]+' 20) || die "hub $name did not start"
    url=${url#listening on }
    local deadline=$((SECONDS + 20))
    until GATEHOUSE_BENCH_KEY=$key "$BIN/gatehouse-bench" --url "$url/mcp" --tool echo__echo --requests 1 --warmup 0 >/dev/null 2>"$TMP/$name-probe.err"; do
        ((SECONDS < deadline)) || die "echo__echo is not callable through hub $name: $(cat "$TMP/$name-probe.err")"
        sleep 0.1
    done
    printf -v "HUB_URL_$name" '%s' "$url"
    printf -v "KEY_$name" '%s' "$key"
}

# Authentication only: no rules, no limits, no audit log.
start_hub plain '[audit]
enabled = false'

# Everything on: ten rules (the allowing one last, so every call evaluates all
# of them), three limits that never trip, and the audit log with payloads.
RULES=""
for i in $(seq 1 9); do
    RULES+="
[[policy.rules]]
name = \"deny-$i\"
effect = \"deny\"
backends = [\"other-$i-*\"]
tools = [\"delete_*\", \"drop_*\"]
"
done
start_hub governed "$RULES
[[policy.rules]]
name = \"allow-staff\"
effect = \"allow\"
roles = [\"admin\", \"developer\"]

[[limits.rules]]
scope = \"user\"
window = \"minute\"
max_requests = 1000000000

[[limits.rules]]
scope = \"key\"
window = \"hour\"
max_requests = 1000000000

[[limits.rules]]
scope = \"tool\"
match = \"echo*\"
window = \"day\"
max_requests = 1000000000
"

phase() { # NAME MODE-ARGS...: prints the load generator's JSON report
    local name=$1 url key
    shift
    url=HUB_URL_$name key=KEY_$name
    GATEHOUSE_BENCH_KEY=${!key} "$BIN/gatehouse-bench" --label "$name" --url "${!url}/mcp" --tool echo__echo "$@" 2>"$TMP/phase.err" ||
        die "phase $name failed: $(cat "$TMP/phase.err")"
}

RATIOS=()
REPORTS=()
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round/$ROUNDS" >&2
    p=$(phase plain --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup 1)
    g=$(phase governed --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup 1)
    REPORTS+=("$p" "$g")
    RATIOS+=("$(calc "$(jget requests_per_sec "$g") / $(jget requests_per_sec "$p")" 3)")
    printf '   plain %s req/s, governed %s req/s, ratio %s\n' "$(jget requests_per_sec "$p")" "$(jget requests_per_sec "$g")" "${RATIOS[-1]}" >&2
done
LAT_P=$(phase plain --mode latency --requests "$LAT_REQUESTS" --warmup 1)
LAT_G=$(phase governed --mode latency --requests "$LAT_REQUESTS" --warmup 1)

MEDIAN=$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
ADDED_P50=$(calc "$(jget p50 "$LAT_G") - $(jget p50 "$LAT_P")" 1)
ADDED_P99=$(calc "$(jget p99 "$LAT_G") - $(jget p99 "$LAT_P")" 1)
VERDICT=$(awk "BEGIN { exit !($MEDIAN >= $TARGET_RATIO) }" && echo pass || echo MISS)
# Audit records written by the governed hub (every call must be there or counted as dropped).
AUDIT=$(curl -fsS -H "Authorization: Bearer $KEY_governed" "$HUB_URL_governed/api/v1/audit/stats" 2>/dev/null || echo '{}')

{
    echo
    printf 'throughput governed/plain per round: %s\n' "${RATIOS[*]}"
    printf 'median ratio:                        %s   target >= %s   %s\n' "$MEDIAN" "$TARGET_RATIO" "$VERDICT"
    printf 'latency c=1 p50 plain / governed:    %s / %s us (added %s us)\n' "$(jget p50 "$LAT_P")" "$(jget p50 "$LAT_G")" "$ADDED_P50"
    printf 'latency c=1 p99 plain / governed:    %s / %s us (added %s us)\n' "$(jget p99 "$LAT_P")" "$(jget p99 "$LAT_G")" "$ADDED_P99"
    printf 'audit log of the governed hub:       %s\n' "$AUDIT"
    printf 'machine: %s CPUs, load %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/bench-governance-$(date -u +%Y-%m-%dT%H%M%SZ).json"
{
    printf '{"commit": "%s", "rounds": %s, "concurrency": %s, "ratios": [%s], "median_ratio": %s, "target_ratio": %s, "verdict": "%s",\n' \
        "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$ROUNDS" "$CONCURRENCY" "$(IFS=,; echo "${RATIOS[*]}")" "$MEDIAN" "$TARGET_RATIO" "$VERDICT"
    printf ' "added_p50_us": %s, "added_p99_us": %s, "audit": %s,\n' "$ADDED_P50" "$ADDED_P99" "$AUDIT"
    printf ' "phases": [%s]}\n' "$(IFS=,; echo "${REPORTS[*]},$LAT_P,$LAT_G")"
} >"$OUT"
echo "results: $OUT"
