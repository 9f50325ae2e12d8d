#!/usr/bin/env bash
# Start the local services s3av uses, if they are installed and not running, then check that the ones
# named on the command line answer:
#   bash scripts/services.sh postgres redis rabbitmq    # the tests (the default)
#   bash scripts/services.sh redis                      # the demo (PostgreSQL optional: SQLite otherwise)
# Redis is installed from Debian's packages when it is missing and this runs as root.
set -euo pipefail

required=("$@")
((${#required[@]})) || required=(postgres redis rabbitmq)
wants() { [[ " ${required[*]} " == *" $1 "* ]]; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if command -v pg_isready >/dev/null && [[ -d /etc/postgresql ]] && ! pg_up; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
fi

if wants redis && ! command -v redis-server >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "installing Redis"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if command -v redis-server >/dev/null && ! redis_up; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi

if command -v rabbitmq-server >/dev/null && ! rabbit_up; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  for _ in $(seq 60); do rabbit_up && break; sleep 1; done
fi

if wants postgres; then pg_up || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }; fi
if wants redis; then redis_up || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }; fi
if wants rabbitmq; then rabbit_up || { echo "RabbitMQ is not answering on 127.0.0.1:5672" >&2; exit 1; }; fi
