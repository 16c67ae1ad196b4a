# Shell helpers shared by the benchmark scripts (sourced, not run).
# The caller sets TMP (a scratch directory) and PIDS (processes to stop on exit).

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}

die() {
    echo "error: $*" >&2
    for f in "$TMP"/*.err; do
        [[ -s $f ]] && { echo "--- $(basename "$f") (last lines)" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# Waits up to $3 seconds for a line matching $2 in file $1 and prints the match.
wait_for_line() {
    local file=$1 pattern=$2 deadline=$((SECONDS + $3)) m
    while ((SECONDS < deadline)); do
        m=$(grep -o -m1 -E "$pattern" "$file" 2>/dev/null || true)
        [[ -n $m ]] && { echo "$m"; return 0; }
        sleep 0.05
    done
    return 1
}

HZ=$(getconf CLK_TCK)
# utime+stime of a process (our binaries have no spaces in their names).
proc_cpu() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Field $1 of a flat JSON object $2 (the load generator's report).
jget() { grep -o "\"$1\":[-0-9.eE+]*" <<<"$2" | head -n1 | cut -d: -f2; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
