"""Folders for prometheus_client's multiprocess mode (stdlib only, on purpose).

prometheus_client decides between in-memory and file-backed values when it is first
imported, so the folder must be in the environment before that (before
``services.metrics`` is imported). One folder per service: each serves ``/metrics`` from
its own folder, so nothing is counted twice.

- ``claims-ocr run`` gives each child ``DATA_DIR/metrics/NAME``, emptied before the child
  starts (:func:`fresh_dir`).
- Compose sets ``PROMETHEUS_MULTIPROC_DIR`` per container (a tmpfs, empty at each start).
- A Celery worker or beat started by hand without it gets
  ``DATA_DIR/metrics/COMMAND-PID`` (:func:`node_multiproc_env`); such folders of processes
  that are gone are removed then.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NODE_COMMANDS = ("worker", "beat")


def fresh_dir(folder: Path) -> Path:
    """``folder``, empty (what a dead process counted there is gone)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def node_multiproc_env(data_dir: Path, argv: Sequence[str]) -> dict[str, str]:
    """``{PROMETHEUS_MULTIPROC_DIR: folder}`` for a Celery worker or beat started without
    one; empty when it is set already or this is another Celery command (``inspect``)."""
    if os.environ.get(MULTIPROC_ENV):
        return {}
    command = next((arg for arg in argv[1:] if arg in NODE_COMMANDS), None)
    if command is None:
        return {}
    parent = data_dir.resolve() / "metrics"
    if parent.is_dir():
        for old in parent.glob(f"{command}-*"):
            pid = old.name.rpartition("-")[2]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    return {MULTIPROC_ENV: str(fresh_dir(parent / f"{command}-{os.getpid()}"))}
