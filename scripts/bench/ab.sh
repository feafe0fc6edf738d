#!/usr/bin/env bash
# Two builds of Herald, alternating, on the same load: whether a change
# moved a figure. Each run starts a fresh node (and, with MODE=redis, a
# fresh Redis) on loopback, runs one `herald bench` scenario with the node's
# PID (and Redis's), prints one line, and stops everything.
#
#   A, B (git revisions; B defaults to the work tree) ROUNDS (3)
#   SCENARIOS ("unicast fanout"; also "read") MODE (embedded or redis)
#   SESSIONS (10000) MESSAGES (20000) FANOUT_ROUNDS (10) READS (20000)
#   READ_SESSIONS (2000)
#
# The bench tool is B's build for both, so only the node differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${A:?A=<git revision> is required}"
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-unicast fanout}
MODE=${MODE:-embedded}
SESSIONS=${SESSIONS:-10000}
MESSAGES=${MESSAGES:-20000}
FANOUT_ROUNDS=${FANOUT_ROUNDS:-10}
READS=${READS:-20000}
READ_SESSIONS=${READ_SESSIONS:-2000}
WORK=$(mktemp -d -t herald-ab.XXXXXX)
PORT=18310 REDIS_PORT=16510
JWT=bench-only-jwt-secret-0123456789abcdef0123 KEY=bench-only-api-key
trap 'pkill -P $$ 2>/dev/null || true; redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

git worktree add -q --detach "$WORK/a" "$A"
(cd "$WORK/a" && go build -o "$WORK/herald-a" ./server/cmd/herald)
git worktree remove --force "$WORK/a"
if [ -n "${B:-}" ]; then
  git worktree add -q --detach "$WORK/b" "$B"
  (cd "$WORK/b" && go build -o "$WORK/herald-b" ./server/cmd/herald)
  git worktree remove --force "$WORK/b"
else
  go build -o "$WORK/herald-b" ./server/cmd/herald
fi

field() { grep -o "\"$2\":[0-9.]*" <<<"$1" | head -1 | cut -d: -f2; }

run() { # BUILD SCENARIO
  local d=$WORK/run env=(HERALD_ADDR=127.0.0.1:$PORT HERALD_JWT_SECRET=$JWT HERALD_API_KEY=$KEY HERALD_LOG_LEVEL=warn) rp=()
  rm -rf "$d" && mkdir -p "$d/redis"
  env+=(HERALD_DATA_DIR=$d/data)
  if [ "$MODE" = redis ]; then
    redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly yes --dir "$d/redis" --daemonize yes >/dev/null
    sleep 0.5
    env+=(HERALD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT)
    rp=(--redis-pid "$(pgrep -f "redis-server 127.0.0.1:$REDIS_PORT")")
  fi
  env "${env[@]}" "$WORK/herald-$1" serve >"$d/node.log" 2>&1 &
  local node=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  local args
  case $2 in
  unicast) args=(--sessions "$SESSIONS" --messages "$MESSAGES" --workers 64) ;;
  fanout) args=(--sessions "$SESSIONS" --rounds "$FANOUT_ROUNDS") ;;
  read) args=(--sessions "$READ_SESSIONS" --reads "$READS" --workers 64) ;;
  esac
  "$WORK/herald-b" bench "$2" --server "http://127.0.0.1:$PORT" --api-key $KEY --jwt-secret $JWT \
    "${args[@]}" --pid $node "${rp[@]}" --timeout 3m 2>>"$d/bench.err" || true
  kill $node && wait $node 2>/dev/null || true
  if [ "$MODE" = redis ]; then redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; sleep 0.5; fi
}

for ((r = 1; r <= ROUNDS; r++)); do
  for sc in $SCENARIOS; do
    for build in a b; do
      line=$(run $build "$sc")
      printf 'round %s  %-7s %-8s %s  node %6s µs/op  redis %6s µs/op  p50 %s ms\n' "$r" "$sc" "$MODE" \
        "$([ $build = a ] && echo "A=$A" || echo "B=${B:-work tree}")" \
        "$(field "$line" server_us_per_op)" "$(field "$line" redis_us_per_op)" "$(field "$line" p50_ms)"
    done
  done
done
