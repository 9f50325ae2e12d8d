"""Clients for a linked account: assume the tenant's role with its external id, cache the credentials.

Every AWS call goes through here, with the endpoint URL from settings so the same code runs against
AWS, an S3-compatible store, or a local test endpoint.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from django.conf import settings

# Credentials are reused until this long before they expire. If s3av's own principal is itself a role,
# AssumeRole is role chaining and AWS caps the session at one hour, so never ask for more.
REFRESH_MARGIN_SECONDS = 300
SESSION_SECONDS = 3600

ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$"
)

# Keyed by (link id, role ARN, external id): a changed role or external id never reuses old credentials.
_cache: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


class AssumeRoleFailed(Exception):
    """The tenant's role could not be assumed; the message is for the tenant, ``code`` is AWS's."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code


def parse_role_arn(role_arn: str) -> tuple[str, str] | None:
    """``(partition, account id)`` of an IAM role ARN, or None when it is not one."""
    match = ROLE_ARN.match(role_arn or "")
    if match is None:
        return None
    return match["partition"], match["account"]


def partition_of(account: Any) -> str:
    parsed = parse_role_arn(getattr(account, "role_arn", "") or "")
    return parsed[0] if parsed else "aws"


def service_client(service: str, region: str | None = None) -> Any:
    """A client with the service's own credentials (used only to assume tenants' roles)."""
    return make_client(service, endpoint_url=settings.AWS_ENDPOINT_URL, region=region or settings.AWS_REGION)


def assume_role(role_arn: str, external_id: str | None, session_name: str = "s3av") -> dict[str, Any]:
    sts = service_client("sts")
    kwargs: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "DurationSeconds": SESSION_SECONDS,
    }
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    try:
        return sts.assume_role(**kwargs)["Credentials"]
    except Exception as exc:
        raise AssumeRoleFailed(explain_assume_role_error(exc, role_arn), error_code(exc)) from exc


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def explain_assume_role_error(exc: Exception, role_arn: str) -> str:
    code = error_code(exc)
    if code == "AccessDenied":
        return (
            f"s3av may not assume {role_arn}: the role's trust policy does not trust s3av's principal "
            "with this account's external id. Deploy the template s3av generated for this account."
        )
    if code in {"RegionDisabledException"}:
        return "STS is not enabled in this region of your account."
    if code in {"ValidationError", "MalformedPolicyDocument"}:
        return f"{role_arn!r} is not a valid role ARN."
    if code in {"ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch"}:
        return "s3av's own AWS credentials were refused; tell the operator of this s3av deployment."
    if not code:
        return f"AWS could not be reached to assume {role_arn}; try again later."
    return f"Assuming {role_arn} failed: {code}."


def _cache_key(account: Any) -> tuple[str, str, str]:
    return (str(account.pk), account.role_arn, account.role_external_id)


def credentials_for(account: Any) -> dict[str, Any]:
    """Cached temporary credentials for a linked account's role."""
    key = _cache_key(account)
    now = time.time()
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] - REFRESH_MARGIN_SECONDS > now:
            return cached[1]
    credentials = assume_role(
        account.role_arn, account.role_external_id, f"s3av-{str(account.tenant_id)[:8]}"
    )
    expiration = credentials.get("Expiration")
    expires_at = expiration.timestamp() if isinstance(expiration, datetime) else now + SESSION_SECONDS
    # Never trust a session beyond the cap we asked for, whatever the endpoint answered.
    expires_at = min(expires_at, now + SESSION_SECONDS)
    with _lock:
        _cache[key] = (expires_at, credentials)
    return credentials


def forget_credentials(account: Any) -> None:
    with _lock:
        for key in [k for k in _cache if k[0] == str(account.pk)]:
            _cache.pop(key, None)
        for client_key in [k for k in _clients if k[0] == str(account.pk)]:
            _clients.pop(client_key, None)


def forget_all() -> None:
    """Drop every cached credential and client (tests; a deployment never needs to)."""
    with _lock:
        _cache.clear()
        _clients.clear()


# Clients are reused while their credentials are (boto3 clients are thread-safe), at most
# MAX_CLIENTS of them, the least recently used dropped first: a worker serving many accounts and
# regions must not keep one per pair forever.
MAX_CLIENTS = 128
_clients: OrderedDict[tuple[str, ...], Any] = OrderedDict()


def client_for(account: Any, service: str, region: str | None = None) -> Any:
    credentials = credentials_for(account)
    region = region or settings.AWS_REGION
    endpoint = settings.AWS_ENDPOINT_URL or ""
    base = (*_cache_key(account), service, region, endpoint)
    key = (*base, str(credentials.get("AccessKeyId", "")))
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    client = make_client(service, endpoint_url=endpoint or None, region=region, credentials=credentials)
    with _lock:
        # Drop this account's clients built on older credentials for the same service and region.
        for stale in [k for k in _clients if k[: len(base)] == base]:
            del _clients[stale]
        _clients[key] = client
        while len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
    return client


def make_client(
    service: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: dict[str, str] | None = None,
) -> Any:
    """A boto3 client with bounded timeouts and standard retries.

    ``credentials`` is the ``Credentials`` dict from STS AssumeRole (AccessKeyId, SecretAccessKey,
    SessionToken); without it the default chain is used.  A custom endpoint (moto, MinIO) gets path-
    style addressing, since it rarely serves bucket subdomains.
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    keys: dict[str, Any] = {}
    if credentials:
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials.get("SessionToken"),
        }
    # A session per client (a boto3 session is not safe to share between threads, and each keeps its
    # own credentials), but one loader of the service models for all: a session loading its own
    # costs ~12 MiB and ~120 ms of CPU per client, the shared one ~1 MiB and ~15 ms.
    # The loader's cache is a dict filled under the GIL (at worst a model is loaded twice), so no lock:
    # building a client may resolve s3av's own credentials over the network (instance metadata).
    core = botocore.session.Session()
    core.register_component("data_loader", _models)
    session = boto3.session.Session(botocore_session=core)
    return session.client(  # type: ignore[call-overload]  # service is a plain str, not a Literal
        service, endpoint_url=endpoint_url, region_name=region, config=config, **keys
    )


_models = botocore.session.Session().get_component("data_loader")
