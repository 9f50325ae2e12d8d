# Environment for the test suite; sourced by the Makefile and .ci/run.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/s3av}"
export S3AV_SECRET_KEY="${S3AV_SECRET_KEY:-test-secret-key-test-secret-key-0123456789}"
export S3AV_BROKER_URL="${S3AV_BROKER_URL:-stub://}"
export S3AV_LOG_LEVEL="${S3AV_LOG_LEVEL:-WARNING}"
