# Sourced by scripts/cluster.sh and scripts/bench/redis-cpu.sh: starts local
# Redis processes on loopback and records their pids in the caller's `pids`
# array (which the caller's cleanup stops).
#
#   start_redis PORT DIR             one Redis with AOF (appendfsync everysec)
#   start_redis_cluster PORT DIR     six cluster-enabled Redis on PORT..PORT+5,
#                                    joined as 3 primaries with a replica each
#
# Both set REDIS_PIDS (comma-separated, for `herald bench --redis-pid`);
# start_redis_cluster also sets REDIS_CLUSTER_ADDRS (comma-separated seeds,
# for HERALD_REDIS_CLUSTER_ADDRS).

redis_wait_ping() {
  local port=$1
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis on port $port did not answer" >&2
  return 1
}

# redis_port_free PORT: waits up to 10 s for nothing to answer on PORT, so a
# Redis left from before (or someone else's) is never taken for ours.
redis_port_free() {
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  echo "port $1 is taken by another Redis" >&2
  return 1
}

start_redis() {
  local port=$1 dir=$2
  redis_port_free "$port"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --appendonly yes --appendfsync everysec --save "" >"$dir/redis.log" 2>&1 &
  pids+=($!)
  REDIS_PIDS=$!
  redis_wait_ping "$port"
  kill -0 "$REDIS_PIDS" 2>/dev/null || { echo "redis on port $port exited (see $dir/redis.log)" >&2; return 1; }
}

start_redis_cluster() {
  local base=$1 dir=$2 addrs=() rpids=() port
  for i in 0 1 2 3 4 5; do redis_port_free $((base + i)); done
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --appendonly yes --appendfsync everysec --save "" >"$dir/$port/redis.log" 2>&1 &
    pids+=($!)
    rpids+=($!)
    addrs+=("127.0.0.1:$port")
  done
  for i in 0 1 2 3 4 5; do redis_wait_ping $((base + i)); done
  for p in "${rpids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "a cluster redis exited (see $dir/*/redis.log)" >&2; return 1; }
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
    echo "redis-cli --cluster create failed (see $dir/create.log)" >&2
    return 1
  }
  # Every node must see all slots assigned before a client's first command.
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    for _ in $(seq 200); do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
      sleep 0.1
    done
    redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' || {
      echo "redis cluster node $port not ok" >&2
      return 1
    }
  done
  REDIS_PIDS=$(IFS=,; echo "${rpids[*]}")
  REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}")
}
