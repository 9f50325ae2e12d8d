"""Upload files to the demo's staging bucket: python scripts/demo_upload.py FILE [FILE ...]

Each file lands in s3://demo-uploads/incoming/<name>; its S3 event reaches s3av within a second.
"""

import os
import sys
from pathlib import Path

import boto3

if len(sys.argv) < 2:
    raise SystemExit(__doc__)
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ.get("S3AV_AWS_ENDPOINT_URL", "http://127.0.0.1:5055"),
    aws_access_key_id="demo",
    aws_secret_access_key="demo",  # noqa: S106 - the demo's local endpoint accepts anything
    region_name="us-east-1",
)
for name in sys.argv[1:]:
    key = f"incoming/{Path(name).name}"
    s3.upload_file(name, "demo-uploads", key)
    print(f"uploaded s3://demo-uploads/{key}")
