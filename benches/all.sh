#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one run, then each figure beside its
# baseline and the ratio. Takes about ten minutes on 2 vCPUs; starts its own
# Kafka broker (levee-testkit) for the end-to-end part.
#
#   benches/all.sh            # everything
#   LEVEE_BENCH_SKIP_E2E=1 benches/all.sh   # without the broker (1-4)
#
# The full output is kept in target/bench-all/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out="$target/bench-all"
mkdir -p "$out"
log="$out/log.txt"

cargo build --release --quiet
cargo build --release --quiet -p levee --example json_lines
events="$(cd "$out" && pwd)/events-20000.jsonl"
"$target/release/levee" gen --events 20000 --seed 3 --out "$events" 2>/dev/null
storm="$(cd "$out" && pwd)/storm-20000.jsonl"
"$target/release/levee" gen --events 20000 --seed 3 --breach-rate 0.5 --out "$storm" 2>/dev/null
export LEVEE_BENCH_EVENTS="$events"

{
    echo "run: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
    cargo bench --quiet -p levee-engine --bench evaluate
    cargo bench --quiet -p levee-engine --bench scaling
    LEVEE_BENCH_EVENTS="$storm" cargo bench --quiet -p levee-engine --bench alert
    cargo bench --quiet -p levee --bench replay
    if [[ -z "${LEVEE_BENCH_SKIP_E2E:-}" ]]; then
        cargo bench --quiet -p levee --bench e2e
        cargo bench --quiet -p levee --bench tables_load
    fi
    echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$log"

# Criterion keeps each benchmark's estimates as JSON; the summary reads the
# mean time per iteration and the number of events per iteration.
python3 - "$target/criterion" "$log" <<'PY'
import json, re, sys
crit, log = sys.argv[1], open(sys.argv[2]).read()

def per_event(path):
    """Mean nanoseconds per event of a criterion benchmark."""
    est = json.load(open(f"{crit}/{path}/new/estimates.json"))
    bench = json.load(open(f"{crit}/{path}/new/benchmark.json"))
    n = (bench.get("throughput") or {}).get("Elements", 1)
    return est["mean"]["point_estimate"] / n

print()
print("== Summary (figure / baseline / ratio / target) ==")
print(log.splitlines()[0])
c, e = per_event("evaluate/compiled"), per_event("evaluate/evalexpr")
print(f"1. evaluation, 581 points: compiled {c/1000:.3f} us/event ({1e9/c:,.0f} events/s) "
      f"vs evalexpr {e/1000:.3f} us/event: {e/c:.1f}x (target >= 100x, >= 500,000 events/s)")
for line in log.splitlines():
    if line.startswith(("replay quiet:", "replay storm:")):
        print("2. " + line)
w, s = per_event("alert/write"), per_event("alert/serde")
print(f"2. one alert: written {w/1000:.2f} us vs built + serialized {s/1000:.2f} us: {s/w:.1f}x (target < 2 us)")
compile_s = dict(re.findall(r"scaling: (\d+) control points compiled in ([\d.]+) s", log))
prev = None
for n in ("581", "5810", "58100"):
    t = per_event(f"scaling/evaluate/{n}")
    ratio = f", {t/prev:.2f}x the 10x smaller (target < 3x)" if prev else ""
    print(f"3. {int(n):,} points: compile {compile_s.get(n, '?')} s, decode + evaluate {t/1000:.2f} us/event{ratio}")
    prev = t
print("   (target: compile 58,100 points < 2 s)")
d, v = per_event("decode/levee"), per_event("decode/serde_json_value")
print(f"4. decode: levee {d/1000:.3f} us/event vs serde_json::Value {v/1000:.3f} us/event: {d/v:.2f}x (target <= 2x)")
sections = re.split(r"^== ", log, flags=re.M)
for s in sections[1:]:
    if s.startswith(("5.", "6.", "7.")):
        print("== " + s.rstrip())
PY
