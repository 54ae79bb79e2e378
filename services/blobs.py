"""Attachment bytes, stored once by content hash where every worker can read them.

The default is a directory. With workers on several machines, point ``BLOB_DIR`` at a
filesystem they all mount (NFS, EFS, a GCS/S3 FUSE mount); the ledger keeps only keys.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from services.private_files import private_dirs


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, key: str) -> bytes: ...


class LocalBlobStore:
    """Content-addressed files ``ab/cd/<sha256>``; writes are atomic (temp file + rename).

    Folders it creates are 0700 and files 0600 (attachments are claim data).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise KeyError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        private_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            os.fchmod(fd, 0o600)  # mkstemp's 0600 is masked by the umask; make it exact
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()
