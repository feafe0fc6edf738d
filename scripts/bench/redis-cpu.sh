#!/usr/bin/env bash
# Redis CPU per notification, Herald against Centrifugo on the same Redis.
#
# For each round, topology (one Redis, a 3-primary/3-replica Cluster), node
# count (one node; two, with sessions on the first and sends to the second)
# and server (Herald, Centrifugo with its Redis engine and history on the
# personal channels), this starts a fresh Redis and the nodes, runs
# `herald bench unicast` and `herald bench fanout` with --redis-pid over
# every Redis process, stops everything, and prints one line per run; the
# servers alternate within each round. At the end it prints the median of
# the rounds for each combination. Everything listens on 127.0.0.1 only,
# and every run is bounded by the bench's --timeout.
#
#   ROUNDS (3) SESSIONS (10000) MESSAGES (10000) FANOUT_ROUNDS (10)
#   FANOUT_USERS (10000) TOPOLOGIES ("single cluster") NODES ("1 2")
#   SERVERS ("herald centrifugo") SCENARIOS ("unicast fanout"; "read" too
#   for the cost of a read, Herald only) READS (5000)
#   HERALD_BIN (bin/herald, built when missing) CENTRIFUGO_BIN (centrifugo on
#   PATH; `go install github.com/centrifugal/centrifugo/v6@v6.9.1`)
#   OUT_DIR (a temporary directory: the JSON lines, logs and each Redis's
#   INFO commandstats and stats over each measured stretch)
#
# Centrifugo OSS runs on a Redis Cluster (engine.redis.cluster_address) with
# classic PUBLISH, which a Cluster copies to every node; its sharded pub/sub
# is in the paid edition only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/redis-cluster.sh

ROUNDS=${ROUNDS:-3}
SESSIONS=${SESSIONS:-10000}
MESSAGES=${MESSAGES:-10000}
FANOUT_ROUNDS=${FANOUT_ROUNDS:-10}
FANOUT_USERS=${FANOUT_USERS:-10000}
READS=${READS:-5000}
TOPOLOGIES=${TOPOLOGIES:-single cluster}
NODES=${NODES:-1 2}
SERVERS=${SERVERS:-herald centrifugo}
SCENARIOS=${SCENARIOS:-unicast fanout}
HERALD_BIN=${HERALD_BIN:-bin/herald}
CENTRIFUGO_BIN=${CENTRIFUGO_BIN:-$(command -v centrifugo || echo centrifugo)}
OUT_DIR=${OUT_DIR:-$(mktemp -d -t herald-redis-cpu.XXXXXX)}
REDIS_PORT=${REDIS_PORT:-16400}
NODE_PORTS=(18201 18202)
JWT_SECRET=bench-only-jwt-secret-0123456789abcdef0123
API_KEY=bench-only-api-key
CF_SECRET=bench-only-centrifugo-hmac-secret-0123456789
CF_KEY=bench-only-centrifugo-api-key

[ -x "$HERALD_BIN" ] || go build -o "$HERALD_BIN" ./server/cmd/herald
if [[ " $SERVERS " == *" centrifugo "* ]] && ! [ -x "$CENTRIFUGO_BIN" ]; then
  echo "no centrifugo binary: go install github.com/centrifugal/centrifugo/v6@v6.9.1, or SERVERS=herald" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.jsonl
SUMMARY=$OUT_DIR/summary.tsv
: >"$RESULTS"
: >"$SUMMARY"

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all' EXIT INT TERM

wait_http() { # URL
  for _ in $(seq 200); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

start_herald() { # N DIR
  local n=$1 dir=$2 form
  if [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
    form=(HERALD_REDIS_CLUSTER_ADDRS="$REDIS_CLUSTER_ADDRS")
  else
    form=(HERALD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0")
  fi
  env "${form[@]}" HERALD_ADDR="127.0.0.1:${NODE_PORTS[$n]}" HERALD_NODE_ID="bench$n" \
    HERALD_DATA_DIR="$dir/node$n" HERALD_JWT_SECRET="$JWT_SECRET" HERALD_API_KEY="$API_KEY" \
    HERALD_LOG_LEVEL=warn "$HERALD_BIN" serve >"$dir/node$n.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:${NODE_PORTS[$n]}/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "herald node $n not ready (see $dir/node$n.log)" >&2
  return 1
}

start_centrifugo() { # N DIR
  local n=$1 dir=$2 engine
  if [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
    engine="\"cluster_address\": [\"$REDIS_CLUSTER_ADDRS\"]"
  else
    engine="\"address\": [\"redis://127.0.0.1:$REDIS_PORT\"]"
  fi
  # History on the personal channels, bounded as Herald's defaults bound a
  # user's history (1,000 events, 7 days): the same durable write per
  # notification as Herald's history append.
  cat >"$dir/centrifugo$n.json" <<CONF
{
  "http_server": {"address": "127.0.0.1", "port": ${NODE_PORTS[$n]}},
  "log": {"level": "warn"},
  "health": {"enabled": true},
  "client": {"token": {"hmac_secret_key": "$CF_SECRET"}, "allowed_origins": ["*"]},
  "http_api": {"key": "$CF_KEY", "error_mode": "transport"},
  "engine": {"type": "redis", "redis": {$engine}},
  "channel": {"namespaces": [{"name": "user", "history_size": 1000, "history_ttl": "168h"}]},
  "usage_stats": {"disabled": true}
}
CONF
  env -u CENTRIFUGO_BIN "$CENTRIFUGO_BIN" -c "$dir/centrifugo$n.json" >"$dir/centrifugo$n.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
  wait_http "http://127.0.0.1:${NODE_PORTS[$n]}/health"
}

# field JSON NAME INDEX: the INDEX-th (1-based) number named NAME in JSON.
field() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | sed -n "${3}p" | cut -d: -f2; }
# roles: "PID LABEL" for each Redis process (primary or replica) and node.
roles() {
  local i=0 pid role
  IFS=, read -ra rp <<<"$REDIS_PIDS"
  for pid in "${rp[@]}"; do
    role=primary
    if [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
      redis-cli -p $((REDIS_PORT + i)) role 2>/dev/null | head -1 | grep -q master || role=replica
    fi
    echo "$pid $role"
    i=$((i + 1))
  done
  for i in "${!node_pids[@]}"; do echo "${node_pids[$i]} node$i"; done
}

# split JSON ROLES: the Redis primaries', replicas' and each node's µs per
# operation from the bench's us_per_op_by_pid (its first, per operation).
split() {
  grep -o '"us_per_op_by_pid":{[^}]*}' <<<"$1" | head -1 | grep -o '"[0-9]*":[0-9.e+-]*' | tr -d '"' | tr : ' ' |
    awk -v roles="$2" '
      BEGIN { n = split(roles, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); role[f[1]] = f[2] } }
      { r = role[$1]; if (r == "primary") p += $2; else if (r == "replica") q += $2; else v[r] = $2 }
      END { printf "primaries %.1f replicas %.1f", p, q; for (k in v) printf " %s %.1f", k, v[k] }'
}

# num X: X with one decimal (blank when X is).
num() { [ -n "$1" ] && printf '%.1f' "$1"; }

# split_summary TOPOLOGY NODES SERVER SCENARIO SPLIT: the per-process split
# into the summary, one row each, and on the run's line.
split_summary() {
  local k v rest=$5
  echo "    per operation: $5"
  set -- "$1" "$2" "$3" "$4"
  while read -r k v; do
    printf '%s\t%s\t%s\t%s\t%s_us_per_op\t%s\n' "$1" "$2" "$3" "$4" "$k" "$v" >>"$SUMMARY"
  done < <(echo "$rest" | xargs -n2)
}

# redis_ports: the port of each Redis process of the run.
redis_ports() {
  local i=0
  IFS=, read -ra rp <<<"$REDIS_PIDS"
  for _ in "${rp[@]}"; do echo $((REDIS_PORT + i)); i=$((i + 1)); done
}

# reset_stats_when_open ERRFILE N: once the bench has opened its N sessions
# and let them settle (a second), reset every Redis's command statistics,
# so that what dump_stats writes covers the measured stretch only.
reset_stats_when_open() {
  local p
  for _ in $(seq 2400); do
    grep -q "opened $2/$2 " "$1" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.9
  for p in $(redis_ports); do redis-cli -p "$p" config resetstat >/dev/null 2>&1 || true; done
}

# dump_stats DIR SCENARIO: each Redis's INFO commandstats and stats.
dump_stats() {
  local p
  for p in $(redis_ports); do
    { redis-cli -p "$p" info commandstats; redis-cli -p "$p" info stats; } >"$1/redis-$p-$2.stats" 2>/dev/null || true
  done
}

run_one() { # ROUND TOPOLOGY NODES SERVER
  local round=$1 topo=$2 nodes=$3 server=$4 dir
  dir=$OUT_DIR/r$round-$topo-$nodes-$server
  mkdir -p "$dir"
  REDIS_CLUSTER_ADDRS=
  node_pids=()
  if [ "$topo" = cluster ]; then
    start_redis_cluster "$REDIS_PORT" "$dir/redis"
  else
    start_redis "$REDIS_PORT" "$dir/redis"
  fi
  local n peer=() creds
  for ((n = 0; n < nodes; n++)); do "start_$server" "$n" "$dir"; done
  if [ "$server" = centrifugo ]; then
    peer=(--peer centrifugo)
    creds=(--api-key "$CF_KEY" --jwt-secret "$CF_SECRET")
  else
    creds=(--api-key "$API_KEY" --jwt-secret "$JWT_SECRET")
  fi
  local others=()
  [ "$nodes" -gt 1 ] && others=(--node-pid "${node_pids[1]}")
  local common=(--server "http://127.0.0.1:${NODE_PORTS[0]}" --send-server "http://127.0.0.1:${NODE_PORTS[$((nodes - 1))]}"
    "${peer[@]}" "${creds[@]}" --pid "${node_pids[0]}" "${others[@]}" --redis-pid "$REDIS_PIDS" --timeout 4m)
  local scenario line roles
  roles=$(roles)
  for scenario in $SCENARIOS; do
    [ "$scenario" = read ] && [ "$server" != herald ] && continue
    local n_open=$SESSIONS
    [ "$scenario" = fanout ] && n_open=$FANOUT_USERS
    reset_stats_when_open "$dir/$scenario.err" "$n_open" &
    local watcher=$!
    case $scenario in
    unicast) line=$("$HERALD_BIN" bench unicast "${common[@]}" --sessions "$SESSIONS" --messages "$MESSAGES" --rate 0 --workers 64 2>"$dir/unicast.err") ;;
    fanout) line=$("$HERALD_BIN" bench fanout "${common[@]}" --sessions "$FANOUT_USERS" --rounds "$FANOUT_ROUNDS" 2>"$dir/fanout.err") ;;
    read) line=$("$HERALD_BIN" bench read "${common[@]}" --sessions "$SESSIONS" --reads "$READS" --workers 64 2>"$dir/read.err") ;;
    esac
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    dump_stats "$dir" "$scenario"
    echo "{\"round\":$round,\"topology\":\"$topo\",\"nodes\":$nodes,\"server\":\"$server\",\"result\":$line}" >>"$RESULTS"
    local redis node
    redis=$(num "$(field "$line" redis_us_per_op 1)")
    node=$(num "$(field "$line" server_us_per_op 1)")
    if [ "$scenario" = read ]; then
      printf '%s\t%s\t%s\t%s\tredis_us_per_read\t%s\n' "$topo" "$nodes" "$server" "$scenario" "$redis" >>"$SUMMARY"
      split_summary "$topo" "$nodes" "$server" "$scenario" "$(split "$line" "$roles")"
      printf 'round %s  %-7s %s node(s)  %-10s read     Redis %6s µs/read  node A %6s µs  rate %s/s  p50 %s ms  errors %s\n' \
        "$round" "$topo" "$nodes" "$server" "$redis" "$node" "$(field "$line" achieved_rate 1 | cut -d. -f1)" \
        "$(field "$line" p50_ms 1)" "$(field "$line" errors 1)"
    elif [ "$scenario" = unicast ]; then
      printf '%s\t%s\t%s\t%s\tredis_us_per_notification\t%s\n' "$topo" "$nodes" "$server" "$scenario" "$redis" >>"$SUMMARY"
      split_summary "$topo" "$nodes" "$server" "$scenario" "$(split "$line" "$roles")"
      printf 'round %s  %-7s %s node(s)  %-10s unicast  Redis %6s µs/notification  node A %6s µs  rate %s/s  delivered %s/%s\n' \
        "$round" "$topo" "$nodes" "$server" "$redis" "$node" "$(field "$line" achieved_rate 1 | cut -d. -f1)" \
        "$(field "$line" delivered 1)" "$(field "$line" sent 1)"
    else
      local per_fanout
      per_fanout=$(num "$(field "$line" redis_us_per_op 2)")
      printf '%s\t%s\t%s\t%s\tredis_us_per_recipient\t%s\n' "$topo" "$nodes" "$server" "$scenario" "$redis" >>"$SUMMARY"
      split_summary "$topo" "$nodes" "$server" "$scenario" "$(split "$line" "$roles")"
      printf '%s\t%s\t%s\t%s\tredis_us_per_fanout\t%s\n' "$topo" "$nodes" "$server" "$scenario" "$per_fanout" >>"$SUMMARY"
      printf 'round %s  %-7s %s node(s)  %-10s fanout   Redis %6s µs/recipient, %s µs/fan-out  node A %6s µs/frame  p50 %s ms  incomplete %s\n' \
        "$round" "$topo" "$nodes" "$server" "$redis" "$per_fanout" "$node" \
        "$(field "$line" p50_ms 1)" "$(field "$line" incomplete_rounds 1)"
    fi
  done
  stop_all
}

echo "results in $OUT_DIR"
for ((round = 1; round <= ROUNDS; round++)); do
  for topo in $TOPOLOGIES; do
    for nodes in $NODES; do
      for server in $SERVERS; do
        run_one "$round" "$topo" "$nodes" "$server"
      done
    done
  done
done

echo
echo "medians of $ROUNDS rounds (µs of Redis CPU, summed over every Redis process):"
sort -t$'\t' -k1,5 -k6,6g "$SUMMARY" | awk -F'\t' '
  function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "%-8s %s node(s)  %-10s %-8s %-26s %8.1f   [%s]\n", t, nd, s, sc, what, m, all } n = 0; all = "" }
  { key = $1 FS $2 FS $3 FS $4 FS $5
    if (key != last) { flush(); last = key; t = $1; nd = $2; s = $3; sc = $4; what = $5 }
    v[++n] = $6; all = all (all == "" ? "" : " ") $6 }
  END { flush() }'
