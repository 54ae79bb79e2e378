"""The blob store's disk is full while the poll records a mailbox.

Preferred variant (needs root and ``mount``): ``BLOB_DIR`` is a 256 KiB tmpfs mounted for
this test and filled up, so ``LocalBlobStore.put`` gets a real ``ENOSPC`` from the kernel.
Fallback (no mount allowed, e.g. an unprivileged CI container): the same real
``LocalBlobStore`` on a normal folder, wrapped so that ``put`` raises
``OSError(ENOSPC)``, i.e. the error the storage layer would raise. The test prints which
variant ran.

Intake runs in-process (``services.intake.ingest``) on a real SQLite ledger and a real
folder mail source holding three sample emails.

"Lost nothing, doubled nothing": while the disk is full no email is marked done
(all three are ``left_for_next_poll`` and still in the mailbox), nothing is half-recorded
as a job; once space is freed the next poll records all three, and a third poll records
nothing again; the invariant checker finds no breach.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.demo import SAMPLE_INBOX_DIR
from services.intake import ingest
from services.invariants import check_invariants, list_done_emails
from services.ledger import JobState, Ledger
from services.mail import MaildirSource
from services.records import CsvAuditLog, LocalArchive
from tests.reliability.support import EMAILS

pytestmark = pytest.mark.slow


class FullDisk:
    """The fallback: a real blob store whose disk reports ENOSPC until ``freed``."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store
        self.full = True

    def put(self, data: bytes) -> str:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.store.put(data)

    def get(self, key: str) -> bytes:
        return self.store.get(key)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path | None]:
    """A 256 KiB tmpfs for this test, or None where mounting is not allowed."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mount = shutil.which("mount")
    done = (
        mount is not None
        and subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield where if done else None
    finally:
        if done:
            subprocess.run(["umount", str(where)], check=True)


def test_full_blob_disk_leaves_every_email_in_the_mailbox(
    tmp_path: Path, tmpfs: Path | None
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in EMAILS:
        shutil.copy2(SAMPLE_INBOX_DIR / name, inbox / name)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    source = MaildirSource(inbox)

    filler: Path | None = None
    if tmpfs is not None:
        variant = "tmpfs (real ENOSPC)"
        blobs: LocalBlobStore | FullDisk = LocalBlobStore(tmpfs / "blobs")
        filler = tmpfs / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        assert full.value.errno == errno.ENOSPC
    else:
        variant = "ENOSPC raised by the storage layer (tmpfs not mountable)"
        blobs = FullDisk(LocalBlobStore(tmp_path / "blobs"))
    print(f"disk-full variant: {variant}")

    first = ingest(source, ledger, blobs)
    assert first.emails == 0 and first.left_for_next_poll == len(EMAILS)
    assert sorted(p.name for p in inbox.glob("*.eml")) == sorted(EMAILS)
    assert not list_done_emails(inbox)
    # Nothing half-recorded: no job points at bytes that were never written.
    assert ledger.list_jobs(limit=100).total == 0

    if filler is not None:
        filler.unlink()
    else:
        assert isinstance(blobs, FullDisk)
        blobs.full = False
    second = ingest(source, ledger, blobs)
    assert second.emails == len(EMAILS) and second.left_for_next_poll == 0
    assert not list(inbox.glob("*.eml"))
    jobs = ledger.list_jobs(limit=100).items
    assert jobs and len(second.new_jobs) == sum(1 for j in jobs if j.state is JobState.RECEIVED)
    for job in jobs:
        if job.blob_key:
            assert blobs.get(job.blob_key)

    third = ingest(source, ledger, blobs)
    assert third.emails == 0 and ledger.list_jobs(limit=100).total == len(jobs)

    verdict = check_invariants(
        ledger,
        audit=CsvAuditLog(tmp_path / "audit.csv"),
        archive=LocalArchive(tmp_path / "archive"),
        deadlines={},  # no workers here: received jobs are expected to wait
        done_emails=list_done_emails(inbox),
        ncb_claims=[],
    )
    assert verdict.ok, verdict.breaches
    ledger.close()
