"""The archive: every original attachment, kept as received.

``store`` is idempotent (a retried task finds the file already there and gets the
same location back), writes are atomic (a reader never sees half a file), and the
member-supplied filename can never escape the archive root.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Protocol

from services.private_files import PRIVATE_FILE, private_dirs

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_NAME = 120


class ArchiveConflict(Exception):
    """A different file is already archived under this job and filename."""


class Archive(Protocol):
    """Where originals go: a local folder, or Google Drive (:mod:`services.records.drive`)."""

    def store(
        self, job_id: str, filename: str, data: bytes, received_at: datetime, email_id: str = ""
    ) -> str:
        """Keep ``data``; return its location. Calling again returns the same one.

        ``email_id`` (the source message's id) may name the stored file; an archive
        may ignore it.
        """
        ...

    def find(self, job_id: str) -> str | None:
        """The location of a job's archived file, if any ("already archived?")."""
        ...


def safe_filename(name: str, default: str = "attachment") -> str:
    """A filename that is safe on any filesystem and cannot traverse directories.

    Keeps only the last path component (either slash), folds Unicode to ASCII,
    replaces anything outside ``[A-Za-z0-9._-]`` with ``_``, strips leading dots
    (no hidden files, no ``..``) and caps the length while keeping the extension.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._ ")
    if not cleaned:
        return default
    if len(cleaned) > MAX_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        cleaned = cleaned[: MAX_NAME - len(ext) - 1].rstrip("._") + ("." + ext if ext else "")
    return cleaned


class LocalArchive:
    """Archive under ``root/YYYY/MM/DD/<job_id>-<safe filename>``.

    The day is ``received_at``'s own calendar date, so callers must pass the
    stored receipt time (not "now") for a retry to land on the same path. A small
    index (``root/.index/<job_id>``) answers :meth:`find` exactly: a glob on
    ``<job_id>-*`` could not tell job ``a`` from job ``a-b``. Folders it creates are
    0700 and files 0600: originals are claim data.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, job_id: str, filename: str, received_at: datetime) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError("job_id must be 1-128 characters of [A-Za-z0-9_-]")
        day = received_at.strftime("%Y/%m/%d")
        return self.root / day / f"{job_id}-{safe_filename(filename)}"

    def store(
        self, job_id: str, filename: str, data: bytes, received_at: datetime, email_id: str = ""
    ) -> str:
        # email_id is not part of the local name: the path stays a function of what
        # every caller has passed so far, so files archived before stay findable.
        target = self.path_for(job_id, filename, received_at)
        if target.exists():
            self._check_same(target, data)
            self._index(job_id, target)
            return str(target)
        private_dirs(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, PRIVATE_FILE)
            try:
                # link() fails if the target exists: first writer wins, no clobbering.
                os.link(tmp, target)
            except FileExistsError:
                self._check_same(target, data)
            else:
                _fsync_dir(target.parent)
        finally:
            os.unlink(tmp)
        self._index(job_id, target)
        return str(target)

    def find(self, job_id: str) -> str | None:
        if not _JOB_ID.match(job_id):
            return None
        try:
            relative = (self.root / ".index" / job_id).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        path = self.root / relative
        return str(path) if path.is_file() else None

    def _index(self, job_id: str, target: Path) -> None:
        """Record where a job's file is; atomic replace, so readers see old or new."""
        index = self.root / ".index"
        private_dirs(index)
        fd, tmp = tempfile.mkstemp(dir=index, prefix=".tmp-")
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(str(target.relative_to(self.root)))
        os.replace(tmp, index / job_id)

    @staticmethod
    def _check_same(target: Path, data: bytes) -> None:
        if target.stat().st_size != len(data) or _sha256(target) != hashlib.sha256(data).digest():
            raise ArchiveConflict(f"{target.name} is archived with different content")


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
