"""An ASGI app served by uvicorn in a daemon thread: the stand-ins, tests and benchmarks.

``port=0`` picks a free port at the first start; later starts reuse it, so a test can
stop the server (connection refused) and start it again at the same URL with the app's
memory intact.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn


class ThreadedServer:
    """``app`` on ``host:port`` in a daemon thread, started and stopped at will."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._lifecycle = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, timeout_s: float = 10.0) -> Self:
        with self._lifecycle:
            if self._server is not None:
                return self
            # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted
            # connections only when the listening socket says it is TCP; with proto 0
            # every response waits out the client's delayed ACK (~40 ms).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            self.port = sock.getsockname()[1]
            # Our own logging stays in charge; the apps write their own access lines.
            config = uvicorn.Config(
                self.app,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [sock]},
                daemon=True,
                name=f"{type(self).__name__}-{self.port}",
            )
            thread.start()
            deadline = time.monotonic() + timeout_s
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    sock.close()
                    raise RuntimeError(f"{type(self).__name__} did not start")
                time.sleep(0.01)
            self._server, self._thread, self._sock = server, thread, sock
            return self

    def stop(self) -> None:
        """Close the listening socket and stop serving (clients get refused)."""
        with self._lifecycle:
            if self._server is None:
                return
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
            if self._sock is not None:
                self._sock.close()
            self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
