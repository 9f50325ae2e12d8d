"""Typed readers for settings taken from the environment.

Every reader fails loudly with ImproperlyConfigured naming the variable, so a
typo in a deployment stops the process at start-up instead of running with a
silently wrong value. Secrets may also come from ``NAME_FILE`` (a path), the
convention of Docker and Kubernetes secrets.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    file_path = os.environ.get(f"{name}_FILE")
    if value is not None and file_path is not None:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if file_path is not None:
        try:
            with open(file_path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return value


def env_str(name: str, default: str | None = None) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set.")
        return default
    return value


def env_optional(name: str) -> str | None:
    value = _raw(name)
    return value or None


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, yes/no, 1/0).")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def parse_size(text: str) -> int:
    """'100M' -> 104857600; plain digits are bytes. Binary units (K, M, G, T)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 512K, 100M or 2G")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def env_duration(name: str, default: str, minimum: int = 1) -> int:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1d``."""
    value = _raw(name) or default
    match = _DURATION_RE.match(value)
    if not match:
        raise ImproperlyConfigured(f"{name}={value!r} is not a duration such as 90s, 30m, 2h or 1d.")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if seconds < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum} seconds.")
    return seconds


def env_size(name: str, default: str) -> int:
    value = _raw(name) or default
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}.") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None, schemes: set[str]) -> str | None:
    value = _raw(name) or default
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}={value!r} must be a URL with one of the schemes: {allowed}.")
    if parsed.scheme not in {"unix", "stub", "sqlite"} and not parsed.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} has no host.")
    return value


_RATE_RE = re.compile(r"^(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)$", re.IGNORECASE)


def env_rate(name: str, default: str) -> str:
    """A request rate such as ``6000/min`` (per second, minute, hour or day)."""
    value = (_raw(name) or default).replace(" ", "")
    match = _RATE_RE.match(value)
    if match is None or int(match.group(1)) < 1:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate such as 6000/min or 100/s.")
    return value


def env_cidrs(name: str) -> list[str]:
    result = []
    for item in env_list(name):
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not a CIDR range.") from None
    return result
