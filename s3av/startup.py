"""How every s3av process starts: manage.py commands (the worker, ingest and scheduler among them) and
the web process (gunicorn, through s3av.wsgi).

A configuration error is printed as one line on stderr, without a traceback, and the process exits with
status 2, the status the one-shot ``scan`` command's contract gives to "could not scan" (1 means
infected). The service's settings (secret key, service principal) are required by every process except
the commands that use neither.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.core.handlers.wsgi import WSGIHandler

CONFIGURATION_ERROR = 2
# `scan` talks only to clamd and S3, with the process's own AWS credentials; help and version print text.
STANDALONE_COMMANDS = frozenset({"scan", "help", "version"})


@contextmanager
def configuration_errors_exit() -> Iterator[None]:
    try:
        yield
    except ImproperlyConfigured as exc:
        message = " ".join(str(exc).split()) or "invalid configuration"
        sys.stderr.write(f"s3av: configuration error: {message}\n")
        sys.stderr.flush()
        raise SystemExit(CONFIGURATION_ERROR) from None


def load_settings() -> None:
    """Import the settings now, so their errors surface here rather than inside Django's own start-up
    (which catches the first one and fails later with a traceback)."""
    settings.INSTALLED_APPS  # noqa: B018 - touching a setting imports the settings module


def require_service_settings() -> None:
    missing = settings.SERVICE_SETTINGS_MISSING
    if missing:
        raise ImproperlyConfigured(" ".join(missing))


def command_name(argv: list[str]) -> str:
    name = argv[1] if len(argv) > 1 else "help"
    return "help" if name.startswith("-") else name


def run_manage(argv: list[str], execute: Callable[[list[str]], None]) -> None:
    with configuration_errors_exit():
        load_settings()
        if command_name(argv) not in STANDALONE_COMMANDS:
            require_service_settings()
        execute(argv)


def wsgi_application() -> WSGIHandler:
    # Only the web process loads Django's WSGI handler (manage.py imports this module too).
    from django.core.wsgi import get_wsgi_application

    with configuration_errors_exit():
        load_settings()
        require_service_settings()
        return get_wsgi_application()
