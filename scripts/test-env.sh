# Environment for the test suite; sourced by the Makefile and .ci/run.
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/s3av}"
export S3AV_SECRET_KEY="${S3AV_SECRET_KEY:-test-secret-key-test-secret-key-0123456789}"
export S3AV_BROKER_URL="${S3AV_BROKER_URL:-stub://}"
export S3AV_LOG_LEVEL="${S3AV_LOG_LEVEL:-WARNING}"
export S3AV_AWS_SERVICE_PRINCIPAL="${S3AV_AWS_SERVICE_PRINCIPAL:-arn:aws:iam::000000000000:role/s3av-test}"
