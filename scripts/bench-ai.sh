#!/usr/bin/env bash
# Measures what the hub's AI proxy adds to an OpenAI Chat Completions call: the
# mock provider (gatehouse-mock-ai) called directly vs through the hub, in one
# run. Latency at concurrency 1 (whole answers, and time to first token for
# streams) and throughput at 64 concurrent clients, release build.
# See BENCHMARKS.md ("AI proxy") for the figures and the targets.
#
#   bash scripts/bench-ai.sh
#
# Everything runs on 127.0.0.1 with ports picked by the OS; the processes it
# starts are stopped and its temporary files removed on exit. Prints one JSON
# line per phase and a summary. Exits non-zero when a call failed.
#
# Knobs (environment):
#   BENCH_LAT_REQUESTS   measured calls per latency phase      (default 3000)
#   BENCH_TPUT_SECS      measured seconds per throughput phase (default 5)
#   BENCH_WARMUP_SECS    unmeasured warm-up per phase          (default 1)
#   BENCH_CONCURRENCY    clients in the throughput phases      (default 64)
#   BENCH_SKIP_BUILD=1   use the release binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LAT_REQUESTS=${BENCH_LAT_REQUESTS:-3000}
TPUT_SECS=${BENCH_TPUT_SECS:-5}
WARMUP=${BENCH_WARMUP_SECS:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-64}

# Targets (BENCHMARKS.md).
TARGET_ADDED_P50_US=150
TARGET_ADDED_P99_US=500
TARGET_TPUT_RATIO=0.6

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building release binaries" >&2
    cargo build --release -p gateway-server -p gatehouse-test-support --bins >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in gateway-server gatehouse-mock-ai gatehouse-ai-bench; do
    [[ -x $BIN/$b ]] || { echo "error: $BIN/$b is missing (build with cargo build --release)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-ai.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/gatehouse-mock-ai" --listen 127.0.0.1:0 >"$TMP/mock.out" 2>"$TMP/mock.err" &
PIDS+=("$!")
MOCK=$(wait_for_line "$TMP/mock.out" 'http://127\.0\.0\.1:[0-9]+' 10) || die "the mock provider did not start"

cat >"$TMP/hub.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[database]
url = "sqlite://$TMP/hub.db"

[[ai.providers]]
name = "mock"
kind = "openai"
base_url = "$MOCK"

[[ai.models]]
name = "gpt-4o-mini"
provider = "mock"
EOF
KEY=$("$BIN/gateway-server" keys create --config "$TMP/hub.toml" --user bench --name bench 2>"$TMP/keys.err" | tail -n1) \
    || die "keys create failed"
[[ $KEY == gk_* ]] || die "keys create printed no key"
export GATEHOUSE_BENCH_KEY=$KEY
"$BIN/gateway-server" serve --config "$TMP/hub.toml" >"$TMP/hub.out" 2>"$TMP/hub.err" &
PIDS+=("$!")
HUB=$(wait_for_line "$TMP/hub.out" 'listening on http://[0-9.]+:[0-9]+' 20) || die "the hub did not start"
HUB=${HUB#listening on }

declare -A R
phase() {
    local name=$1
    shift
    echo "== $name" >&2
    local out
    out=$("$BIN/gatehouse-ai-bench" --label "$name" "$@" 2>"$TMP/phase.err") || die "$name failed: $(cat "$TMP/phase.err") $out"
    echo "$out"
    R[$name]=$out
}
lat() { phase "$1" --url "$2/v1/chat/completions" --mode latency --requests "$LAT_REQUESTS" --warmup "$WARMUP" "${@:3}"; }
tput() { phase "$1" --url "$2/v1/chat/completions" --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup "$WARMUP" "${@:3}"; }

lat direct_latency "$MOCK"
lat hub_latency "$HUB"
lat direct_ttft "$MOCK" --stream
lat hub_ttft "$HUB" --stream
tput direct_throughput "$MOCK"
tput hub_throughput "$HUB"
tput direct_stream_throughput "$MOCK" --stream
tput hub_stream_throughput "$HUB" --stream

added() { calc "$(jget "$2" "${R[hub_$1]}") - $(jget "$2" "${R[direct_$1]}")" 1; }
ratio() { calc "$(jget requests_per_sec "${R[hub_$1]}") / $(jget requests_per_sec "${R[direct_$1]}")" 2; }
P50=$(added latency p50_us) P99=$(added latency p99_us)
TP50=$(added ttft p50_us) TP99=$(added ttft p99_us)
RATIO=$(ratio throughput) SRATIO=$(ratio stream_throughput)
cat <<EOF

AI proxy, added by the hub (hub minus direct):
  whole answers, concurrency 1:  p50 +${P50} us   p99 +${P99} us   (targets: <= ${TARGET_ADDED_P50_US} / ${TARGET_ADDED_P99_US} us)
  streams, time to first token:  p50 +${TP50} us   p99 +${TP99} us
  throughput at $CONCURRENCY clients:       whole $(jget requests_per_sec "${R[hub_throughput]}") vs $(jget requests_per_sec "${R[direct_throughput]}") req/s = ${RATIO}x   streamed $(jget requests_per_sec "${R[hub_stream_throughput]}") vs $(jget requests_per_sec "${R[direct_stream_throughput]}") req/s = ${SRATIO}x   (target: >= ${TARGET_TPUT_RATIO}x)
EOF
