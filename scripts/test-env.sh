# Environment for the test suite; sourced by scripts/test.sh and the Makefile. The database defaults to
# the private cluster of scripts/postgres.sh (scripts/test.sh starts it); set DATABASE_URL to use another.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:${S3AV_PG_PORT:-54329}/s3av}"
export S3AV_SECRET_KEY="${S3AV_SECRET_KEY:-test-secret-key-test-secret-key-0123456789}"
export S3AV_BROKER_URL="${S3AV_BROKER_URL:-stub://}"
export S3AV_LOG_LEVEL="${S3AV_LOG_LEVEL:-WARNING}"
export S3AV_AWS_SERVICE_PRINCIPAL="${S3AV_AWS_SERVICE_PRINCIPAL:-arn:aws:iam::000000000000:role/s3av-test}"
# Loopback never goes through a proxy: a machine behind one sets http_proxy, which boto3, urllib and
# requests would also apply to the local S3 endpoint and the portal on 127.0.0.1.
_s3av_no_proxy=${no_proxy:-${NO_PROXY:-}}
export no_proxy="${_s3av_no_proxy:+${_s3av_no_proxy},}127.0.0.1,localhost,::1"
export NO_PROXY=$no_proxy
unset _s3av_no_proxy
