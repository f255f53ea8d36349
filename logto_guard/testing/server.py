"""Serve an ASGI app with uvicorn on a loopback socket, from a background thread.

The local issuer, the example app and the end-to-end tests all need a real HTTP server that
starts in well under a second and stops cleanly; this is that one piece. The socket is bound
before uvicorn starts, so the URL is known (and reserved) before the first request.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any


class LoopbackServer:
    """`with LoopbackServer(app) as url:` — uvicorn on 127.0.0.1 (a free port by default).

    `config` goes to `uvicorn.Config` (e.g. `lifespan="off"`, `timeout_keep_alive=300`).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        try:
            import uvicorn
        except ImportError as exc:  # pragma: no cover - uvicorn ships with the dev extras
            raise RuntimeError("serving needs uvicorn: pip install 'logto-guard[example]'") from exc
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        options: dict[str, Any] = {"log_level": "warning", "access_log": False} | config
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> str:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.002)
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """Idempotent; forces the exit if a graceful one takes longer than `timeout`."""
        thread, self._thread = self._thread, None
        self.server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self.server.force_exit = True
                thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
