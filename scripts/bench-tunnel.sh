#!/usr/bin/env bash
# Measures the agent tunnel: the latency a tools/call gains through an agent
# (the fixture behind gateway-agent vs the same fixture as a hub backend),
# the hub's memory per connected idle agent, the time to accept many agents
# connecting at once, the agent's idle memory and its binary size.
# Results go to BENCHMARKS.md by hand ("Tunnel"); figures are not tested.
#
#   bash scripts/bench-tunnel.sh
#
# Everything runs on 127.0.0.1 with ports picked by the OS; the processes it
# starts are stopped and its temporary files removed on exit.
#
# Knobs (environment):
#   BENCH_LAT_REQUESTS   measured calls per latency phase   (default 2000)
#   BENCH_IDLE_AGENTS    agents for the memory figure        (default 1000)
#   BENCH_STORM_AGENTS   agents connecting at once           (default 10000)
#   BENCH_PROFILE        cargo profile of the binaries       (default release)
#   BENCH_SKIP_BUILD=1   use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LAT_REQUESTS=${BENCH_LAT_REQUESTS:-2000}
IDLE_AGENTS=${BENCH_IDLE_AGENTS:-1000}
STORM_AGENTS=${BENCH_STORM_AGENTS:-10000}
PROFILE=${BENCH_PROFILE:-release}

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building $PROFILE binaries" >&2
    flag=(--release)
    [[ $PROFILE == debug ]] && flag=()
    cargo build "${flag[@]}" -p gateway-server -p gateway-agent -p gatehouse-test-support --bins >&2
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
for b in gateway-server gateway-agent gatehouse-fixture gatehouse-bench gatehouse-agents-load; do
    [[ -x $BIN/$b ]] || { echo "error: $BIN/$b is missing (build it with cargo build)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-tunnel.XXXXXX")
PIDS=()
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# Every agent is a socket on both ends of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
echo "   open files limit: $(ulimit -n)" >&2

cat >"$TMP/hub.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[database]
url = "sqlite://$TMP/hub.db"

[log]
level = "warn"

[[backends]]
name = "fx"
transport = "stdio"
command = "$BIN/gatehouse-fixture"
EOF
"$BIN/gateway-server" admin create --config "$TMP/hub.toml" --username bench --password-stdin <<<"bench-password-$$-long" >/dev/null 2>"$TMP/admin.err" \
    || die "admin create failed"
KEY=$("$BIN/gateway-server" keys create --config "$TMP/hub.toml" --user bench --name bench 2>"$TMP/keys.err" | tail -n1)
[[ $KEY == gk_* ]] || die "keys create printed no key"
TOKEN=$("$BIN/gateway-server" agents enroll --config "$TMP/hub.toml" --user bench --name bench 2>"$TMP/enroll.err" | tail -n1)
[[ $TOKEN == ga_* ]] || die "agents enroll printed no token"
export GATEHOUSE_BENCH_KEY=$KEY GATEHOUSE_ADMIN_KEY=$KEY

"$BIN/gateway-server" serve --config "$TMP/hub.toml" >"$TMP/hub.out" 2>"$TMP/hub.err" &
HUB_PID=$!
PIDS+=("$HUB_PID")
HUB=$(wait_for_line "$TMP/hub.out" 'listening on http://[0-9.]+:[0-9]+' 20) || die "the hub did not start"
HUB=${HUB#listening on }

# --- the agent, serving the same fixture ----------------------------------------------
mkdir -p "$TMP/agent"
printf '[agent]\nname = "bench"\nhub_url = "%s"\n\n[[servers]]\nname = "fx"\ntransport = "stdio"\ncommand = "%s"\n' \
    "$HUB" "$BIN/gatehouse-fixture" >"$TMP/agent/config.toml"
(umask 077 && printf '%s\n' "$TOKEN" >"$TMP/agent/token")
GATEHOUSE_AGENT_STATE_DIR=$TMP/agent/state "$BIN/gateway-agent" run --no-tui --config "$TMP/agent/config.toml" \
    >/dev/null 2>"$TMP/agent.err" &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

probe() { "$BIN/gatehouse-bench" --url "$HUB/mcp" --tool "$1" --requests 1 --warmup 0 >/dev/null 2>"$TMP/probe.err"; }
deadline=$((SECONDS + 30))
until probe fx__echo && probe bench__fx__echo; do
    ((SECONDS < deadline)) || die "the tools are not callable: $(cat "$TMP/probe.err")"
    sleep 0.1
done

lat() {
    echo "== $1" >&2
    "$BIN/gatehouse-bench" --label "$1" --url "$HUB/mcp" --tool "$2" --mode latency --requests "$LAT_REQUESTS" --warmup 1 2>"$TMP/lat.err" \
        || die "$1 failed"
}
HUB_LAT=$(lat hub_backend fx__echo)
TUNNEL_LAT=$(lat through_agent bench__fx__echo)

sleep 1
AGENT_RSS_KB=$(rss_kb "$AGENT_PID")
AGENT_BYTES=$(stat -c %s "$BIN/gateway-agent")

# --- idle agents: hub memory per connection --------------------------------------------
agents_load() {
    local n=$1 prefix=$2 hold=$3
    "$BIN/gatehouse-agents-load" --hub "$HUB" --agents "$n" --prefix "$prefix" --hold-secs "$hold" \
        >"$TMP/load-$prefix.out" 2>"$TMP/load-$prefix.err" &
    LOAD_PID=$!
}
RSS_BEFORE_KB=$(rss_kb "$HUB_PID")
echo "== $IDLE_AGENTS idle agents" >&2
agents_load "$IDLE_AGENTS" idle 3
wait_for_line "$TMP/load-idle.err" 'READY [0-9]+' 300 >/dev/null || die "the idle agents never connected"
sleep 1
RSS_IDLE_KB=$(rss_kb "$HUB_PID")
wait "$LOAD_PID" || die "idle agents: $(cat "$TMP/load-idle.out")"
IDLE_REPORT=$(cat "$TMP/load-idle.out")

echo "== $STORM_AGENTS agents connecting at once" >&2
agents_load "$STORM_AGENTS" storm 1
wait "$LOAD_PID" || die "storm: $(cat "$TMP/load-storm.out") $(tail -n 3 "$TMP/load-storm.err")"
STORM_REPORT=$(cat "$TMP/load-storm.out")

PER_AGENT_KB=$(calc "($RSS_IDLE_KB - $RSS_BEFORE_KB) / $IDLE_AGENTS" 1)
printf '{"profile":"%s","hub_backend":%s,"through_agent":%s,"added_p50_us":%s,"added_p99_us":%s,' "$PROFILE" "$HUB_LAT" "$TUNNEL_LAT" \
    "$(calc "$(jget p50 "$TUNNEL_LAT") - $(jget p50 "$HUB_LAT")" 0)" "$(calc "$(jget p99 "$TUNNEL_LAT") - $(jget p99 "$HUB_LAT")" 0)"
printf '"hub_rss_kb_before":%s,"hub_rss_kb_with_idle_agents":%s,"hub_kb_per_idle_agent":%s,"idle":%s,"storm":%s,' \
    "$RSS_BEFORE_KB" "$RSS_IDLE_KB" "$PER_AGENT_KB" "$IDLE_REPORT" "$STORM_REPORT"
printf '"agent_idle_rss_kb":%s,"agent_binary_bytes":%s}\n' "$AGENT_RSS_KB" "$AGENT_BYTES"
