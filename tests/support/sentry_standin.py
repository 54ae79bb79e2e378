"""A local Sentry stand-in: an HTTP server that records every envelope the SDK sends.

DSN ``http://public@127.0.0.1:PORT/1`` makes ``sentry-sdk`` POST envelopes (often gzip) to
``/api/1/envelope/``; each one is kept decompressed, in the order received, and can also
be appended to a file (``record_path``) so a test can read what other processes sent.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class SentryStandin:
    def __init__(self, record_path: Path | None = None) -> None:
        self.envelopes: list[bytes] = []
        self.record_path = record_path
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = self.headers.get("content-encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                standin.record(body)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def record(self, body: bytes) -> None:
        with self._lock:
            self.envelopes.append(body)
            if self.record_path is not None:
                with self.record_path.open("ab") as out:
                    out.write(body + b"\n")

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self._server.server_port}/1"

    def start(self) -> SentryStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SentryStandin:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    @property
    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(self.envelopes)

    def events(self) -> list[dict[str, Any]]:
        """The error events received (envelope items of type ``event``)."""
        found = []
        with self._lock:
            envelopes = list(self.envelopes)
        for envelope in envelopes:
            lines = envelope.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                try:
                    if json.loads(header).get("type") == "event":
                        found.append(json.loads(payload))
                except ValueError:
                    continue
        return found
