"""The connection every primitive talks through: a lightkube client (sync and asyncio)
configured from a kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) or the pod's service
account, with the context's namespace — all handled by lightkube, never by hand."""

from __future__ import annotations

import os
import weakref
from typing import Optional, Union

from lightkube import AsyncClient, Client
from lightkube.config.kubeconfig import KubeConfig, SingleConfig

PathLike = Union[str, "os.PathLike[str]"]


class Connection:
    """Where Konductor's objects are: a cluster or a ``konductor server``.

    ``kubeconfig`` (a file) and ``context`` pick the server; ``namespace`` overrides the
    context's (in a pod: the pod's)."""

    def __init__(
        self,
        kubeconfig: Optional[PathLike] = None,
        context: Optional[str] = None,
        namespace: Optional[str] = None,
    ) -> None:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single: Optional[SingleConfig] = config.get(context_name=context)
        if single is None:
            raise ValueError(f"no context {context!r} in the kubeconfig")
        self.config = single
        self.namespace: str = namespace or single.namespace or "default"
        self._client: Optional[Client] = None
        self._async_client: Optional[AsyncClient] = None
        self._pid = os.getpid()
        _connections.add(self)

    def _reset_after_fork(self) -> None:
        # A client's connections must not be shared with a forked child.
        if self._pid != os.getpid():
            self._client = None
            self._async_client = None
            self._pid = os.getpid()

    @property
    def client(self) -> Client:
        """The synchronous client (made on first use; a new one in a forked child)."""
        self._reset_after_fork()
        if self._client is None:
            self._client = Client(config=self.config, namespace=self.namespace, field_manager="konductor-sdk-python")
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        """The asyncio client (made on first use; a new one in a forked child)."""
        self._reset_after_fork()
        if self._async_client is None:
            self._async_client = AsyncClient(
                config=self.config, namespace=self.namespace, field_manager="konductor-sdk-python"
            )
        return self._async_client


_default: Optional[Connection] = None

_connections: "weakref.WeakSet[Connection]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child must not use its parent's connections (their sockets and TLS
    # state are the parent's): every connection makes new clients on next use.
    for connection in list(_connections):
        connection._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_connection() -> Connection:
    """The connection primitives use when none is given (made on first use)."""
    global _default
    if _default is None:
        _default = Connection()
    return _default
