#!/usr/bin/env bash
# Starts the docker-compose topology as local processes: Redis with AOF, two
# Herald nodes and nginx in front of them, all on loopback. Stops everything
# on Ctrl-C or SIGTERM.
#
# With CLUSTER=redis-cluster (`make cluster-redis-cluster`) the Redis is a
# Redis Cluster of six processes on REDIS_PORT..REDIS_PORT+5, three
# primaries with a replica each, and the nodes use HERALD_REDIS_CLUSTER_ADDRS
# (sharded pub/sub, one pub/sub connection per primary).
#
#   CLUSTER ("" or redis-cluster) LB_PORT (8080) NODE1_PORT (8081)
#   NODE2_PORT (8082) REDIS_PORT (6390) CLUSTER_DIR (a temporary directory)
#   HERALD_BIN (bin/herald) HERALD_JWT_SECRET, HERALD_API_KEY (development
#   defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/redis-cluster.sh

LB_PORT=${LB_PORT:-8080}
NODE1_PORT=${NODE1_PORT:-8081}
NODE2_PORT=${NODE2_PORT:-8082}
REDIS_PORT=${REDIS_PORT:-6390}
HERALD_BIN=${HERALD_BIN:-bin/herald}
CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -d -t herald-cluster.XXXXXX)}
export HERALD_JWT_SECRET=${HERALD_JWT_SECRET:-dev-cluster-secret-change-me}
export HERALD_API_KEY=${HERALD_API_KEY:-dev-cluster-api-key}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$CLUSTER_DIR/redis" "$CLUSTER_DIR/nginx/logs"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

case ${CLUSTER:-} in
"")
  start_redis "$REDIS_PORT" "$CLUSTER_DIR/redis"
  echo "redis  pid $REDIS_PIDS port $REDIS_PORT"
  redis_form=(HERALD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0")
  ;;
redis-cluster)
  start_redis_cluster "$REDIS_PORT" "$CLUSTER_DIR/redis"
  echo "redis cluster  pids $REDIS_PIDS  nodes $REDIS_CLUSTER_ADDRS"
  redis_form=(HERALD_REDIS_CLUSTER_ADDRS="$REDIS_CLUSTER_ADDRS")
  ;;
*)
  echo "CLUSTER=$CLUSTER: want redis-cluster or nothing" >&2
  exit 2
  ;;
esac

for i in 1 2; do
  port_var="NODE${i}_PORT"
  env "${redis_form[@]}" HERALD_ADDR="127.0.0.1:${!port_var}" HERALD_TRUSTED_PROXIES=127.0.0.1 \
    HERALD_NODE_ID="node$i" HERALD_DATA_DIR="$CLUSTER_DIR/node$i" \
    "$HERALD_BIN" serve >"$CLUSTER_DIR/node$i.log" 2>&1 &
  pids+=($!)
  echo "node$i  pid $! port ${!port_var}"
done

cat >"$CLUSTER_DIR/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $CLUSTER_DIR/nginx/nginx.pid;
error_log $CLUSTER_DIR/nginx/logs/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $CLUSTER_DIR/nginx/body;
  proxy_temp_path $CLUSTER_DIR/nginx/proxy;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  upstream herald {
    least_conn;
    server 127.0.0.1:$NODE1_PORT max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$NODE2_PORT max_fails=1 fail_timeout=5s;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$LB_PORT;
    location / {
      proxy_pass http://herald;
      include $PWD/deploy/herald-proxy.conf;
    }
  }
}
CONF
"$NGINX" -p "$CLUSTER_DIR/nginx" -c "$CLUSTER_DIR/nginx/nginx.conf" >"$CLUSTER_DIR/nginx.log" 2>&1 &
pids+=($!)
echo "nginx  pid $! port $LB_PORT"
echo "cluster up: http://127.0.0.1:$LB_PORT (logs in $CLUSTER_DIR)"
wait -n "${pids[@]}" || true
echo "a cluster process exited; stopping" >&2
