"""Who a primitive acts as, chosen as koncli chooses: stable for barrier arrivals (a
retried Job must count once), a new identity per claim for locks (a restarted process
must never re-enter its dead predecessor's grant)."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Optional

HOLDER_VARIABLE = "KONDUCTOR_HOLDER"


def _pod_or_host() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname() or "unknown-host"


def arrival_holder(given: Optional[str] = None) -> str:
    """A barrier arrival's holder: the one given, else ``$KONDUCTOR_HOLDER``,
    ``$POD_NAME``, the hostname."""
    return given or os.environ.get(HOLDER_VARIABLE) or _pod_or_host()


def run_holder(given: Optional[str] = None) -> str:
    """A lock claim's holder: the one given, else the pod or host name with a random
    suffix — a new holder for every claim."""
    return given or f"{_pod_or_host()}-{secrets.token_hex(4)}"
