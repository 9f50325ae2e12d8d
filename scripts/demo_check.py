"""Check a running demo end to end; `S3AV_DEMO_CHECK=1 make demo` runs it and then stops the demo.

Passes when the portal signs the demo admin in and lists the results; the first protection's bucket
scan is done with the samples' verdicts (the clean files tagged Clean, EICAR and the ClamAV test archive
Infected and moved to the quarantine bucket); and an EICAR uploaded now is found from its S3 event.
Exits 0 when all of that holds within S3AV_DEMO_CHECK_TIMEOUT seconds (default 300), 1 otherwise.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3

BASE = os.environ["S3AV_PUBLIC_URL"].rstrip("/")
if not BASE.startswith(("http://", "https://")):
    raise SystemExit(f"S3AV_PUBLIC_URL={BASE}: expected an http(s) URL")
API_KEY = os.environ["S3AV_DEMO_API_KEY"]
PASSWORD = os.environ["S3AV_DEMO_PASSWORD"]
DEADLINE = time.monotonic() + float(os.environ.get("S3AV_DEMO_CHECK_TIMEOUT", "300"))
UPLOADS, QUARANTINE = "demo-uploads", "demo-quarantine"
CLEAN_KEYS = {"incoming/readme.txt", "incoming/data/report 2026+final.csv"}
INFECTED_KEYS = {"incoming/eicar.com", "incoming/samples/clam.zip"}
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
UPLOADED_KEY = "incoming/demo-check-eicar.com"

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3AV_AWS_ENDPOINT_URL"],
    aws_access_key_id="demo",
    aws_secret_access_key="demo",  # noqa: S106 - the demo's local endpoint accepts anything
    region_name="us-east-1",
)


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    """Call check until it returns something true; fail with what was last seen at the deadline."""
    last: Any = None
    while time.monotonic() < DEADLINE:
        try:
            last = check()
        except OSError as error:  # the web process may still be starting
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(1)
    raise SystemExit(f"demo check failed: {what} (last seen: {last!r})")


def api(path: str) -> Any:
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {API_KEY}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - BASE is checked http(s)
        return json.load(response)


def results() -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in api("/api/v1/results/?key_prefix=incoming/&page_size=500")["results"]}


def portal_lists_results() -> bool:
    """Sign in through the portal's form as a person would, then open the Findings page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(BASE + "/accounts/login/", timeout=10).read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = {"login": "admin@demo.local", "password": PASSWORD, "csrfmiddlewaretoken": csrf}
    request = urllib.request.Request(  # noqa: S310 - BASE is checked http(s)
        BASE + "/accounts/login/", data=urllib.parse.urlencode(form).encode(), headers={"Referer": BASE + "/"}
    )
    opener.open(request, timeout=10).read()
    with opener.open(BASE + "/findings/", timeout=10) as page:
        body = page.read().decode()
        return page.url.rstrip("/").endswith("/findings") and "eicar.com" in body


def first_scan_done() -> dict[str, Any] | None:
    jobs = [job for job in api("/api/v1/jobs/")["results"] if job["bucket_name"] == UPLOADS]
    done = [job for job in jobs if job["trigger"] == "protect" and job["status"] == "done"]
    return done[0] if done else None


def tags(key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=UPLOADS, Key=key)["TagSet"]}


def quarantined() -> bool:
    now = results()
    moved = all(now[key]["quarantine_bucket"] == QUARANTINE for key in INFECTED_KEYS)
    return moved and len(s3.list_objects_v2(Bucket=QUARANTINE).get("Contents", [])) >= len(INFECTED_KEYS)


def main() -> None:
    started = time.monotonic()
    wait_until("the portal answers /healthz", lambda: api("/healthz") is not None)
    job = wait_until("the first protection's bucket scan is done", first_scan_done)
    seen = results()
    verdicts = {key: seen[key]["verdict"] for key in CLEAN_KEYS | INFECTED_KEYS if key in seen}
    expected = {**dict.fromkeys(CLEAN_KEYS, "Clean"), **dict.fromkeys(INFECTED_KEYS, "Infected")}
    if verdicts != expected or (job["clean"], job["infected"], job["errors"]) != (2, 2, 0):
        raise SystemExit(f"demo check failed: verdicts {verdicts}, job counters {job}")
    for key in CLEAN_KEYS:
        if tags(key).get("scan-result") != "Clean":
            raise SystemExit(f"demo check failed: {key} is not tagged Clean: {tags(key)}")
    wait_until("the infected samples are moved to the quarantine bucket", quarantined)
    wait_until("the portal signs in and lists the results", portal_lists_results)
    first = time.monotonic() - started

    uploaded = time.monotonic()
    s3.put_object(Bucket=UPLOADS, Key=UPLOADED_KEY, Body=EICAR)
    found = wait_until(
        "an EICAR uploaded now is found from its S3 event",
        lambda: results().get(UPLOADED_KEY, {}).get("verdict") == "Infected" and results()[UPLOADED_KEY],
    )
    if found["trigger"] != "event":
        raise SystemExit(f"demo check failed: the upload was scanned by {found['trigger']!r}, not its event")
    print(
        "demo check passed: the portal signed in and listed the results; the first bucket scan was done "
        f"({job['clean']} Clean, {job['infected']} Infected quarantined) {first:.0f} s after start-up; "
        f"an upload was found Infected from its S3 event in {time.monotonic() - uploaded:.1f} s"
    )


if __name__ == "__main__":
    main()
