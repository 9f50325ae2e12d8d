"""The schema describes the API's two ways in; only processes that serve the API load DRF for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.test import Client

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db


def test_the_schema_describes_api_keys_and_the_portal_session(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/v1/schema/").content)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"]["type"] == "http" and schemes["apiKey"]["scheme"] == "bearer"
    assert schemes["session"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}
    me = schema["paths"]["/api/v1/me"]["get"]
    assert {"apiKey": []} in me["security"] and {"session": []} in me["security"]


def test_a_process_that_does_not_serve_the_api_does_not_load_drf_for_it() -> None:
    # The worker, the scheduler and `manage.py scan` set Django up and never route /api/v1/: DRF's
    # fields and drf-spectacular (~0.12 s of a start-up, docs/performance.md "Large objects") wait
    # for s3av.urls, which imports the api packages.
    heavy = "('rest_framework.fields', 'rest_framework.views', 'drf_spectacular.plumbing', 'django_filters')"
    probe = f"import django, sys; django.setup(); print(sorted(m for m in {heavy} if m in sys.modules))"
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "s3av.settings"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
