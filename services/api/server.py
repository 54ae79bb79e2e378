"""Serving the API with uvicorn in the foreground (``claims-ocr api``); tests and the
benchmark serve it in a thread with ``services.threaded_server.ThreadedServer``.

Our own logging stays in charge (``log_config=None``) and uvicorn's access log is off:
the API writes its own access lines, without query strings.
"""

from __future__ import annotations

import signal

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then return (after a graceful shutdown).

    uvicorn raises the signal again once it has shut down, to end the process the way
    the signal would; the handlers here take that second delivery, so the caller's
    cleanup runs and the command exits 0.
    """
    stops: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stops.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
