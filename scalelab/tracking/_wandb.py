"""The wandb package, imported only when W&B is used, and what every W&B call here shares.

Run ids: a store run is always the same W&B run (:func:`wandb_run_id`), so live logging, a later
``push`` and a second ``push`` all continue one W&B run instead of creating duplicates. Settings:
bounded timeouts and no console capture, system metrics, code or git upload (the store has the
provenance). Secrets: the API key is never put in a config, a summary, a message or a file here;
:func:`redact` scrubs it from any text that came from wandb before it is shown.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from scalelab.errors import DataError

__all__ = [
    "DEFAULT_BASE_URL",
    "WANDB_MISSING",
    "api_key_available",
    "base_url",
    "import_wandb",
    "redact",
    "redact_obj",
    "run_settings",
    "server_problem",
    "wandb_run_id",
]

WANDB_MISSING = "W&B support needs the wandb package: pip install 'scalelab[wandb]'"
DEFAULT_BASE_URL = "https://api.wandb.ai"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def import_wandb() -> Any:
    """Return the ``wandb`` module.

    Raises
    ------
    DataError
        If wandb is not installed, with the command that installs it.
    """
    try:
        import wandb
    except ImportError:
        raise DataError(WANDB_MISSING) from None
    return wandb


def wandb_run_id(run_id: str, provenance: Mapping[str, Any]) -> str:
    """The W&B run id of a store run: readable, at most 64 characters, and stable.

    It hashes the store run id with the run's creation time and host (from its provenance),
    so the same run maps to the same W&B run from any copy of the store, while two stores that
    both have a run called ``tiny-s0`` do not collide in one project.

    Examples
    --------
    >>> wandb_run_id("t_seed-0_ab12cd34", {"created_at": "2024-01-01T00:00:00+00:00", "host": "h"})
    't_seed-0_ab12cd34-15acc6909790'
    """
    created = str(provenance.get("created_at", ""))
    host = str(provenance.get("host", ""))
    digest = hashlib.sha256(f"{run_id}\n{created}\n{host}".encode()).hexdigest()[:12]
    slug = _ID_UNSAFE.sub("-", run_id).strip("-")[:48] or "run"
    return f"{slug}-{digest}"


def base_url() -> str:
    """The W&B server in use: ``$WANDB_BASE_URL`` or the public cloud."""
    return os.environ.get("WANDB_BASE_URL", "").strip() or DEFAULT_BASE_URL


def api_key_available(url: str | None = None) -> bool:
    """Whether wandb would find credentials without prompting: ``$WANDB_API_KEY``, an identity
    token file, or a netrc entry for the server's host."""
    if os.environ.get("WANDB_API_KEY", "").strip() or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import netrc

    host = urlparse(url or base_url()).hostname or ""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def server_problem(url: str | None = None, *, timeout: float = 5.0) -> str | None:
    """Why the W&B server cannot be used right now, or None if it answers with this API key.

    One small GraphQL request (``viewer { id }``, what ``wandb login`` checks) with a hard
    ``timeout``: a server that refuses connections, never answers, or rejects the key is found
    out in seconds, before ``wandb.init`` would wait and retry for its own timeouts. Only an
    API key from ``$WANDB_API_KEY`` is sent; with a key elsewhere (netrc) the check stops at the
    TCP connection.
    """
    import base64
    import urllib.error
    import urllib.request

    target = (url or base_url()).rstrip("/")
    parsed = urlparse(target)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            pass
    except OSError as exc:
        return f"cannot connect to {target} ({exc.strerror or type(exc).__name__})"
    key = os.environ.get("WANDB_API_KEY", "").strip()
    if not key:
        return None
    body = b'{"query": "query Viewer { viewer { id } }"}'
    auth = base64.b64encode(f"api:{key}".encode()).decode()
    req = urllib.request.Request(f"{target}/graphql", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return f"{target} rejected the API key (HTTP {exc.code})"
        return f"{target} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return f"{target} did not answer within {timeout:g} s ({reason})"
    return None


def redact(text: str) -> str:
    """``text`` with the API key in the environment (if any) replaced by ``***``."""
    key = os.environ.get("WANDB_API_KEY", "").strip()
    return text.replace(key, "***") if key else text


def redact_obj(value: Any) -> Any:
    """A copy of JSON-like ``value`` with the API key scrubbed from every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value


def run_settings(wandb: Any, *, init_timeout: float, finish_timeout: float) -> Any:
    """``wandb.Settings`` for runs scalelab starts: bounded waits, nothing captured implicitly.

    Network retries are capped too, so an unreachable server costs seconds, not the wandb
    defaults of many minutes; what could not be uploaded stays in the run's local folder for
    ``wandb sync``.
    """
    return wandb.Settings(
        init_timeout=init_timeout,
        finish_timeout=finish_timeout,
        x_graphql_timeout_seconds=min(20.0, init_timeout),
        x_graphql_retry_max=3,
        x_file_stream_retry_max=5,
        x_file_stream_timeout_seconds=20.0,
        x_file_transfer_retry_max=3,
        x_file_transfer_timeout_seconds=60.0,
        console="off",
        x_disable_stats=True,
        x_disable_machine_info=True,
        save_code=False,
        disable_git=True,
        quiet=True,
    )
