#!/usr/bin/env bash
# Install (from the machine's packages, when missing and this runs as root), start and check the local
# services s3av uses:
#   bash scripts/services.sh rabbitmq                   # the tests (scripts/test.sh starts PostgreSQL)
#   bash scripts/services.sh postgres redis             # the demo
#   bash scripts/services.sh                            # all three
# PostgreSQL is the private cluster of scripts/postgres.sh (its own port, under var/): a PostgreSQL already
# on the machine is neither used nor changed. Redis and RabbitMQ are the machine's own, on their usual
# loopback ports, started when installed and not running.
set -euo pipefail
cd "$(dirname "$0")/.."

required=("$@")
((${#required[@]})) || required=(postgres redis rabbitmq)

redis_up() { redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

apt_install() {
  # Only what is missing, only as root: an existing installation is never touched.
  command -v "$1" >/dev/null && return 0
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || {
    echo "$1 is not installed; as root: apt-get install $2" >&2
    exit 1
  }
  echo "installing $2"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

wait_for() {
  local check=$1 seconds=$2
  for _ in $(seq "$seconds"); do "$check" && return 0; sleep 1; done
  "$check"
}

start_redis() {
  redis_up && return 0
  apt_install redis-server redis-server
  redis_up && return 0 # the package's own service, when the machine runs an init system
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/s3av.log
  wait_for redis_up 30 || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
}

start_rabbitmq() {
  rabbit_up && return 0
  apt_install rabbitmq-server rabbitmq-server
  wait_for rabbit_up 5 && return 0
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for rabbit_up 120 || { echo "RabbitMQ is not answering on 127.0.0.1:5672" >&2; exit 1; }
}

for service in "${required[@]}"; do
  case $service in
    postgres) bash scripts/postgres.sh start >/dev/null ;;
    redis) start_redis ;;
    rabbitmq) start_rabbitmq ;;
    *) echo "unknown service $service (postgres, redis, rabbitmq)" >&2; exit 2 ;;
  esac
done
