"""Owner-only files and folders for everything that holds claim data.

The ledger, blobs, archive and audit log hold names, policy numbers and amounts, so no
other local user may read them, however the process was started (its umask may be
0022). Folders we create are 0700 and files 0600, set explicitly rather than left to
the umask. Folders that already exist (a shared mount, the user's data dir) are left as
they are: their owner chose their modes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dirs(path: Path | str) -> Path:
    """``mkdir -p path``: every folder it creates is 0700 (umask-independent)."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another process made it first; it set the mode
        os.chmod(folder, PRIVATE_DIR)
    return path


def make_private(fd: int) -> None:
    """Set an open file to 0600 if it is not (tightens files made before this rule).

    A file we cannot change (another owner, on a shared mount) is used as it is, with a
    warning: refusing to write it would lose records.
    """
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode == PRIVATE_FILE:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError as exc:
        log.warning("could not make a data file owner-only: %s", type(exc).__name__)


def open_private(path: Path | str, flags: int) -> int:
    """``os.open`` that creates the file (and its folders) owner-only; returns the fd."""
    path = Path(path)
    private_dirs(path.parent)
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        make_private(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd
