#!/usr/bin/env bash
# Measures what the hub adds to an MCP tools/call: latency at concurrency 1 and
# throughput at 64 concurrent clients, each directly against the fixture
# backend and through the hub, in one run, plus the hub's idle memory.
# See BENCHMARKS.md for what the figures mean and the targets.
#
#   bash scripts/bench.sh
#
# Everything runs on 127.0.0.1 with ports picked by the OS; the processes it
# starts are stopped and its temporary files removed on exit. Prints a table
# and writes results/bench-<date>.json. Exits non-zero when a call failed.
#
# Knobs (environment):
#   BENCH_LAT_REQUESTS   measured calls per latency phase      (default 20000)
#   BENCH_TPUT_SECS      measured seconds per throughput phase (default 5)
#   BENCH_WARMUP_SECS    unmeasured warm-up per phase          (default 1)
#   BENCH_CONCURRENCY    clients in the throughput phases      (default 64)
#   BENCH_QUIET_WAIT     seconds to wait for an idle machine   (default 30)
#   BENCH_HUB_ENV        extra VAR=value words for the hub's environment, e.g.
#                        "TOKIO_WORKER_THREADS=1" (default: none)
#   BENCH_SKIP_BUILD=1   use the release binaries already built
#   BENCH_OUT_DIR        where the JSON goes                   (default results)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LAT_REQUESTS=${BENCH_LAT_REQUESTS:-20000}
TPUT_SECS=${BENCH_TPUT_SECS:-5}
WARMUP=${BENCH_WARMUP_SECS:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
OUT_DIR=${BENCH_OUT_DIR:-results}

# Targets (BENCHMARKS.md).
TARGET_ADDED_P50_US=100
TARGET_ADDED_P99_US=500
TARGET_TPUT_RATIO=0.5
TARGET_IDLE_RSS_MB=30

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building release binaries" >&2
    cargo build --release -p gateway-server -p gatehouse-test-support --bins >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in gateway-server gatehouse-fixture gatehouse-bench; do
    [[ -x $BIN/$b ]] || { echo "error: $BIN/$b is missing (build with cargo build --release)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

# Busy jiffies of the whole machine (user nice system irq softirq steal), and
# of softirq alone: loopback TCP delivery runs there and is charged to no process.
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
cpu_softirq() { awk '/^cpu /{print $8; exit}' /proc/stat; }
# Time the hypervisor gave our virtual CPUs to someone else (0 on bare metal).
cpu_steal() { awk '/^cpu /{print $9; exit}' /proc/stat; }
# cutime+cstime of this shell: every child it has waited for (the load generator runs).
children_cpu() { awk '{print $16+$17}' "/proc/$$/stat"; }
# "pid jiffies" of every process but ours and the kernel's packet delivery
# threads: own CPU plus that of reaped children (a compiler run that started and
# ended meanwhile shows up in its parent's).
others_snapshot() {
    awk -v ours=" $$ $HUB_PID $FIXTURE_PID " 'FNR == 1 {
        i = 2; while ($i !~ /\)$/ && i < NF) i++; o = i - 2
        if (index(ours, " " $1 " ") == 0 && $2 !~ /^\(ksoftirqd/) print $1, $(14 + o) + $(15 + o) + $(16 + o) + $(17 + o)
    }' /proc/[0-9]*/stat 2>/dev/null || true
}
# Jiffies other processes used between two snapshots.
others_delta() { awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; if (d > 0) sum += d } END { print sum + 0 }' "$1" "$2"; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status"; }

# Other people's work on the machine skews every figure: wait (a while) for
# the CPUs to be idle, measuring over one second.
busy_percent() {
    local b0 b1
    b0=$(cpu_busy)
    sleep 1
    b1=$(cpu_busy)
    calc "100 * ($b1 - $b0) / $HZ / $(nproc)" 0
}
QUIET=true
START_BUSY=$(busy_percent)
deadline=$((SECONDS + QUIET_WAIT))
while ((START_BUSY > 10)); do
    if ((SECONDS >= deadline)); then
        QUIET=false
        echo "warning: the machine is busy (${START_BUSY}% CPU used by others): figures are unreliable" >&2
        break
    fi
    echo "   machine busy (${START_BUSY}% CPU); waiting" >&2
    START_BUSY=$(busy_percent)
done
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the backend: the fixture's stateless echo mode -----------------------------------
"$BIN/gatehouse-fixture" --http --json-only --listen 127.0.0.1:0 >"$TMP/fixture.out" 2>"$TMP/fixture.err" &
FIXTURE_PID=$!
PIDS+=("$FIXTURE_PID")
FIXTURE_URL=$(wait_for_line "$TMP/fixture.out" 'http://127\.0\.0\.1:[0-9]+/mcp' 10) || die "the fixture did not start"

# --- the hub ---------------------------------------------------------------------------
cat >"$TMP/hub.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[database]
url = "sqlite://$TMP/hub.db"

[mcp]
request_timeout_secs = 30

[[backends]]
name = "echo"
transport = "http"
url = "$FIXTURE_URL"
EOF
KEY=$("$BIN/gateway-server" keys create --config "$TMP/hub.toml" --user bench --name bench 2>"$TMP/keys.err" | tail -n1) \
    || die "keys create failed"
[[ $KEY == gk_* ]] || die "keys create printed no key"
export GATEHOUSE_BENCH_KEY=$KEY

# shellcheck disable=SC2086 # BENCH_HUB_ENV is a list of words
env ${BENCH_HUB_ENV:-} "$BIN/gateway-server" serve --config "$TMP/hub.toml" >"$TMP/hub.out" 2>"$TMP/hub.err" &
HUB_PID=$!
PIDS+=("$HUB_PID")
HUB=$(wait_for_line "$TMP/hub.out" 'listening on http://[0-9.]+:[0-9]+' 20) || die "the hub did not start"
HUB=${HUB#listening on }

deadline=$((SECONDS + 20))
until curl -fsS "$HUB/health/ready" 2>/dev/null | grep -q '"echo":{"health":"ready"'; do
    ((SECONDS < deadline)) || die "backend echo never became ready: $(curl -sS "$HUB/health/ready" 2>&1)"
    sleep 0.05
done
sleep 1
IDLE_RSS_START_KB=$(rss_kb "$HUB_PID")

# The aggregated catalog loads right after the backend is ready: wait for echo__echo.
deadline=$((SECONDS + 20))
until "$BIN/gatehouse-bench" --url "$HUB/mcp" --tool echo__echo --requests 1 --warmup 0 >/dev/null 2>"$TMP/probe.err"; do
    ((SECONDS < deadline)) || die "echo__echo is not callable through the hub: $(cat "$TMP/probe.err")"
    sleep 0.1
done

# --- the phases ------------------------------------------------------------------------
PHASES=()
NOISY=()
# A phase during which other processes used more than this many cores is noisy.
NOISE_CORES=0.15
# run_phase NAME PROCESS-UNDER-TEST(fixture|hub) ARGS...: runs the load generator,
# keeps its report plus the CPU (in cores) used meanwhile by each of our
# processes, by the kernel's packet delivery (softirq, charged to no process),
# and by every other process ("others": someone else's work, i.e. noise).
run_phase() {
    local name=$1 sut=$2
    shift 2
    echo "== $name" >&2
    local b0 s0 h0 f0 c0 t0 b1 s1 h1 f1 c1 t1 out rc st0 st1
    others_snapshot >"$TMP/others.0"
    st0=$(cpu_steal) b0=$(cpu_busy) s0=$(cpu_softirq) h0=$(proc_cpu "$HUB_PID") f0=$(proc_cpu "$FIXTURE_PID") c0=$(children_cpu) t0=$(date +%s%N)
    set +e
    out=$("$BIN/gatehouse-bench" --label "$name" "$@" 2>"$TMP/phase.err")
    rc=$?
    set -e
    st1=$(cpu_steal) b1=$(cpu_busy) s1=$(cpu_softirq) h1=$(proc_cpu "$HUB_PID") f1=$(proc_cpu "$FIXTURE_PID") c1=$(children_cpu) t1=$(date +%s%N)
    others_snapshot >"$TMP/others.1"
    [[ $rc == 0 ]] || die "$name failed: $(cat "$TMP/phase.err") $out"
    local wall busy sirq hub fix cli other steal
    wall=$(calc "($t1 - $t0) / 1e9" 3)
    busy=$(calc "($b1 - $b0) / $HZ / $wall" 2)
    sirq=$(calc "($s1 - $s0) / $HZ / $wall" 2)
    steal=$(calc "($st1 - $st0) / $HZ / $wall" 2)
    hub=$(calc "($h1 - $h0) / $HZ / $wall" 2)
    fix=$(calc "($f1 - $f0) / $HZ / $wall" 2)
    cli=$(calc "($c1 - $c0) / $HZ / $wall" 2)
    other=$(calc "$(others_delta "$TMP/others.0" "$TMP/others.1") / $HZ / $wall" 2)
    if awk "BEGIN { exit !($other > $NOISE_CORES || $steal > $NOISE_CORES) }"; then
        NOISY+=("$name")
        echo "warning: other processes used $other cores (hypervisor steal: $steal) during $name: its figures are unreliable" >&2
    fi
    # CPU time of the process under test per successful call, in microseconds.
    # CPU of the process under test per call: its cores over the measured rate
    # (the warm-up runs at the same rate, so the ratio holds over the whole phase).
    local sut_cores=$fix rps cpu_per_call
    [[ $sut == hub ]] && sut_cores=$hub
    rps=$(jget requests_per_sec "$out")
    cpu_per_call=$(calc "1e6 * $sut_cores / ($rps > 0 ? $rps : 1)" 1)
    PHASES+=("${out%\}},\"cpu_cores\":{\"wall_secs\":$wall,\"machine\":$busy,\"hub\":$hub,\"fixture\":$fix,\"load_generator\":$cli,\"softirq\":$sirq,\"others\":$other,\"steal\":$steal},\"${sut}_cpu_us_per_call\":$cpu_per_call}")
}

run_phase direct_latency fixture --url "$FIXTURE_URL" --tool echo --mode latency --requests "$LAT_REQUESTS" --warmup "$WARMUP"
run_phase hub_latency hub --url "$HUB/mcp" --tool echo__echo --mode latency --requests "$LAT_REQUESTS" --warmup "$WARMUP"
run_phase hub_backend_latency hub --url "$HUB/mcp/echo" --tool echo --mode latency --requests "$LAT_REQUESTS" --warmup "$WARMUP"
run_phase direct_throughput fixture --url "$FIXTURE_URL" --tool echo --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup "$WARMUP"
run_phase hub_throughput hub --url "$HUB/mcp" --tool echo__echo --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup "$WARMUP"
run_phase hub_backend_throughput hub --url "$HUB/mcp/echo" --tool echo --mode throughput -c "$CONCURRENCY" --duration "$TPUT_SECS" --warmup "$WARMUP"

sleep 1
IDLE_RSS_AFTER_KB=$(rss_kb "$HUB_PID")
HWM_KB=$(hwm_kb "$HUB_PID")
END_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# --- verdict ---------------------------------------------------------------------------
# The reports, in the order run_phase ran them.
d_lat=${PHASES[0]} h_lat=${PHASES[1]} b_lat=${PHASES[2]}
d_tp=${PHASES[3]} h_tp=${PHASES[4]} b_tp=${PHASES[5]}
ADDED_P50=$(calc "$(jget p50 "$h_lat") - $(jget p50 "$d_lat")" 1)
ADDED_P99=$(calc "$(jget p99 "$h_lat") - $(jget p99 "$d_lat")" 1)
ADDED_P50_BACKEND=$(calc "$(jget p50 "$b_lat") - $(jget p50 "$d_lat")" 1)
ADDED_P99_BACKEND=$(calc "$(jget p99 "$b_lat") - $(jget p99 "$d_lat")" 1)
RATIO=$(calc "$(jget requests_per_sec "$h_tp") / $(jget requests_per_sec "$d_tp")" 3)
RATIO_BACKEND=$(calc "$(jget requests_per_sec "$b_tp") / $(jget requests_per_sec "$d_tp")" 3)
IDLE_MB=$(calc "$IDLE_RSS_START_KB / 1024" 1)
IDLE_AFTER_MB=$(calc "$IDLE_RSS_AFTER_KB / 1024" 1)
HWM_MB=$(calc "$HWM_KB / 1024" 1)
verdict() { if awk "BEGIN { exit !($1) }"; then echo pass; else echo MISS; fi; }
V_P50=$(verdict "$ADDED_P50 <= $TARGET_ADDED_P50_US")
V_P99=$(verdict "$ADDED_P99 <= $TARGET_ADDED_P99_US")
V_RATIO=$(verdict "$RATIO >= $TARGET_TPUT_RATIO")
V_RSS=$(verdict "$IDLE_MB <= $TARGET_IDLE_RSS_MB && $IDLE_AFTER_MB <= $TARGET_IDLE_RSS_MB")

row() {
    local r=$1
    printf '%-24s %9s %9s %9s %9s %9s %10s %8s %8s %8s %8s\n' "$2" "$(jget p50 "$r")" "$(jget p90 "$r")" "$(jget p99 "$r")" \
        "$(jget p999 "$r")" "$(jget max "$r")" "$(jget requests_per_sec "$r")" "$(jget hub "$r")" "$(jget fixture "$r")" \
        "$(jget load_generator "$r")" "$(jget others "$r")"
}
{
    echo
    printf '%-24s %9s %9s %9s %9s %9s %10s %8s %8s %8s %8s\n' "phase" "p50 us" "p90 us" "p99 us" "p99.9 us" "max us" "req/s" \
        "hub cpu" "fix cpu" "gen cpu" "others"
    row "$d_lat" "direct        c=1"
    row "$h_lat" "hub /mcp      c=1"
    row "$b_lat" "hub /mcp/echo c=1"
    row "$d_tp" "direct        c=$CONCURRENCY"
    row "$h_tp" "hub /mcp      c=$CONCURRENCY"
    row "$b_tp" "hub /mcp/echo c=$CONCURRENCY"
    echo
    printf 'added p50 at c=1 (/mcp):        %8s us   target <= %s us    %s\n' "$ADDED_P50" "$TARGET_ADDED_P50_US" "$V_P50"
    printf 'added p99 at c=1 (/mcp):        %8s us   target <= %s us    %s\n' "$ADDED_P99" "$TARGET_ADDED_P99_US" "$V_P99"
    printf 'added p50 / p99 (/mcp/echo):    %8s / %s us\n' "$ADDED_P50_BACKEND" "$ADDED_P99_BACKEND"
    printf 'throughput hub/direct (/mcp):   %8s      target >= %s      %s\n' "$RATIO" "$TARGET_TPUT_RATIO" "$V_RATIO"
    printf 'throughput hub/direct (/echo):  %8s\n' "$RATIO_BACKEND"
    printf 'hub RSS idle start / after:     %8s / %s MB (peak %s MB)   target <= %s MB   %s\n' "$IDLE_MB" "$IDLE_AFTER_MB" "$HWM_MB" "$TARGET_IDLE_RSS_MB" "$V_RSS"
    printf 'machine: %s CPUs, load before %s, after %s, idle at start: %s (%s%% busy)\n' "$(nproc)" "$LOADAVG" "$END_LOADAVG" "$QUIET" "$START_BUSY"
    if ((${#NOISY[@]})); then
        printf 'NOISY: other processes were busy during %s: repeat the run\n' "${NOISY[*]}"
    else
        printf 'noise: no other process used more than %s cores during any phase\n' "$NOISE_CORES"
    fi
} | tee "$TMP/table.txt"

mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="$OUT_DIR/bench-$STAMP.json"
json_str() { printf '"%s"' "$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1")"; }
{
    printf '{\n'
    printf '  "date": "%s",\n' "$STAMP"
    printf '  "commit": %s,\n' "$(json_str "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")"
    printf '  "machine": {"cpus": %s, "cpu_model": %s, "kernel": %s, "loadavg_before": %s, "loadavg_after": %s, "busy_percent_at_start": %s, "idle_at_start": %s},\n' \
        "$(nproc)" "$(json_str "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)")" "$(json_str "$(uname -r)")" \
        "$(json_str "$LOADAVG")" "$(json_str "$END_LOADAVG")" "$START_BUSY" "$QUIET"
    printf '  "noisy_phases": [%s],\n' "$( ((${#NOISY[@]})) && printf '"%s",' "${NOISY[@]}" | sed 's/,$//')"
    printf '  "settings": {"latency_requests": %s, "throughput_secs": %s, "warmup_secs": %s, "concurrency": %s, "hub_env": %s},\n' \
        "$LAT_REQUESTS" "$TPUT_SECS" "$WARMUP" "$CONCURRENCY" "$(json_str "${BENCH_HUB_ENV:-}")"
    printf '  "phases": [\n    %s' "${PHASES[0]}"
    for p in "${PHASES[@]:1}"; do printf ',\n    %s' "$p"; done
    printf '\n  ],\n'
    printf '  "summary": {"added_p50_us": %s, "added_p99_us": %s, "added_p50_us_backend_endpoint": %s, "added_p99_us_backend_endpoint": %s, "throughput_ratio": %s, "throughput_ratio_backend_endpoint": %s, "hub_idle_rss_mb_start": %s, "hub_idle_rss_mb_after": %s, "hub_peak_rss_mb": %s},\n' \
        "$ADDED_P50" "$ADDED_P99" "$ADDED_P50_BACKEND" "$ADDED_P99_BACKEND" "$RATIO" "$RATIO_BACKEND" "$IDLE_MB" "$IDLE_AFTER_MB" "$HWM_MB"
    printf '  "targets": {"added_p50_us": {"max": %s, "verdict": "%s"}, "added_p99_us": {"max": %s, "verdict": "%s"}, "throughput_ratio": {"min": %s, "verdict": "%s"}, "hub_idle_rss_mb": {"max": %s, "verdict": "%s"}}\n' \
        "$TARGET_ADDED_P50_US" "$V_P50" "$TARGET_ADDED_P99_US" "$V_P99" "$TARGET_TPUT_RATIO" "$V_RATIO" "$TARGET_IDLE_RSS_MB" "$V_RSS"
    printf '}\n'
} >"$OUT"
echo "results: $OUT"
