#!/usr/bin/env bash
# Second opinion with wrk on the `http` scenario's servers: starts them (deploy/load http
# -serve-only, a fresh database that is dropped at the end), then runs wrk against the bare echo
# handler, OFREP single evaluation (1,000 flags), bulk evaluation with the client-side key (100
# client-side flags of 1,000) and with the server key of the 100-flag project, and prints the
# ratios against the goals. Everything runs on 127.0.0.1.
#
#   deploy/load/wrk.sh                      # wrk -t1 -c64, 2 s warm-up + 10 s per target
#   DURATION=20s CONNS=128 THREADS=1 deploy/load/wrk.sh
#
# Needs wrk (apt-get install -y wrk), Go and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
TARGETS=${TARGETS:-"bare single bulk bulk-server"}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

(cd "$root" && go build -o "$tmp/vexil-load" ./deploy/load)
"$tmp/vexil-load" http -serve-only -env-file "$tmp/env" -serve-for 30m >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$tmp/env" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; echo "the servers did not start" >&2; exit 1; }
  sleep 0.5
done
[ -f "$tmp/env" ] || { echo "the servers did not start in time" >&2; exit 1; }
# shellcheck disable=SC1091
. "$tmp/env"

echo "wrk -t$THREADS -c$CONNS, $WARMUP warm-up + $DURATION per target; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rps
for target in $TARGETS; do
  case $target in
    bare)        addr=$BARE_ADDR; mode=bare;   key=$SERVER_KEY ;;
    bare-mw)     addr=$BARE_MW_ADDR; mode=bare; key=$SERVER_KEY ;;
    single)      addr=$SDK_ADDR;  mode=single; key=$SERVER_KEY ;;
    bulk)        addr=$SDK_ADDR;  mode=bulk;   key=$CLIENT_KEY ;;
    bulk-server) addr=$SDK_ADDR;  mode=bulk;   key=$BULK_SERVER_KEY ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  export MODE=$mode KEY=$key FLAGS_FILE
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$here/ofrep.lua" "http://$addr" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$here/ofrep.lua" "http://$addr")
  echo "== $target"
  echo "$out" | grep -E 'Latency |Req/Sec|50%|90%|99%|Requests/sec|Non-2xx|Socket errors|requests in'
  rps[$target]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
done

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${rps[bare]:-}" ]; then
  for target in $TARGETS; do
    [ "$target" = bare ] && continue
    [ -n "${rps[$target]:-}" ] || continue
    goal=25
    [ "$target" = single ] && goal=60
    [ "$target" = bare-mw ] && goal=0
    awk -v t="$target" -v r="${rps[$target]}" -v b="${rps[bare]}" -v g="$goal" 'BEGIN {
      p = 100 * r / b
      v = (g == 0) ? "(diagnostic)" : ((p >= g) ? "MET" : "MISSED")
      printf "%-12s %9.0f req/s = %5.1f%% of bare (%.0f req/s), goal >= %d%%: %s\n", t, r, p, b, g, v }'
  done
fi
