"""DriveArchive: real googleapiclient over HTTP against the Google stand-in's Drive routes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from services.demo.google_standin import GoogleStandinState
from services.demo.google_standin.drive import FOLDER, DriveStore
from services.records.audit import RecordsMisconfigured, RecordsUnavailable
from services.records.drive import DriveArchive, check_access

DAY = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
CHUNK = 256 * 1024
SHARED_DRIVE = "0AsharedDriveX"


@pytest.fixture
def root(drive_store: DriveStore) -> str:
    return drive_store.add_folder("Claims archive", drive_id=SHARED_DRIVE)


@pytest.fixture
def archive(drive_service: Any, root: str, no_backoff: None) -> DriveArchive:
    return DriveArchive(
        drive_service, root, num_retries=2, chunk_size=CHUNK, resumable_threshold=2 * CHUNK
    )


def file_id(location: str) -> str:
    assert location.startswith("drive:")
    return location.removeprefix("drive:")


def folders(store: DriveStore) -> list[str]:
    return sorted(store.path(f["id"]) for f in store.files() if f["mimeType"] == FOLDER)


def job_files(store: DriveStore, job_id: str) -> list[dict[str, Any]]:
    return [f for f in store.files() if f["appProperties"].get("claims_ocr_job_id") == job_id]


def test_layout_name_and_job_property(archive: DriveArchive, drive_store: DriveStore):
    data = bytes(range(256)) * 3  # every byte value survives the multipart body
    location = archive.store("job-1", "receipt.pdf", data, DAY, email_id="18c2f0a")

    fid = file_id(location)
    assert drive_store.path(fid) == "Claims archive/claims/2026/12/03/18c2f0a_receipt.pdf"
    assert drive_store.content(fid) == data
    (meta,) = [f for f in drive_store.files() if f["id"] == fid]
    assert meta["appProperties"] == {"claims_ocr_job_id": "job-1"}
    assert meta["mimeType"] == "application/pdf"
    assert meta["driveId"] == SHARED_DRIVE
    assert archive.find("job-1") == location
    assert archive.find("job-2") is None


def test_folders_are_made_once_and_reused(
    archive: DriveArchive, drive_service: Any, root: str, drive_store: DriveStore
):
    archive.store("job-1", "a.jpg", b"1", DAY, email_id="m1")
    made = folders(drive_store)
    assert made == [
        "Claims archive",
        "Claims archive/claims",
        "Claims archive/claims/2026",
        "Claims archive/claims/2026/12",
        "Claims archive/claims/2026/12/03",
    ]
    creates = sum(1 for m, p, _ in drive_store.requests if (m, p) == ("POST", "/drive/v3/files"))
    archive.store("job-2", "b.jpg", b"2", DAY, email_id="m2")  # same day: cached ids
    other = DriveArchive(drive_service, root)  # a new process finds them by name
    other.store("job-3", "c.jpg", b"3", DAY, email_id="m3")
    assert folders(drive_store) == made
    assert creates == sum(
        1 for m, p, _ in drive_store.requests if (m, p) == ("POST", "/drive/v3/files")
    )
    archive.store("job-4", "d.jpg", b"4", datetime(2026, 12, 4, tzinfo=UTC), email_id="m4")
    assert folders(drive_store) == [*made, "Claims archive/claims/2026/12/04"]


def test_storing_a_job_again_returns_its_file_without_uploading(
    archive: DriveArchive, drive_service: Any, root: str, drive_store: DriveStore
):
    first = archive.store("job-1", "r.pdf", b"%PDF-1", DAY, email_id="m1")
    uploads = drive_store.uploads
    assert archive.store("job-1", "r.pdf", b"%PDF-1", DAY, email_id="m1") == first
    # After a crash (a new instance, nothing cached) too.
    assert DriveArchive(drive_service, root).store("job-1", "r.pdf", b"%PDF-1", DAY) == first
    assert drive_store.uploads == uploads
    assert len(job_files(drive_store, "job-1")) == 1


def test_a_racing_second_upload_gives_way_to_the_oldest(
    archive: DriveArchive,
    drive_service: Any,
    root: str,
    drive_store: DriveStore,
    monkeypatch: pytest.MonkeyPatch,
):
    first = archive.store("job-1", "r.pdf", b"%PDF-1", DAY, email_id="m1")
    racer = DriveArchive(drive_service, root)
    real = racer._job_files
    looks: list[int] = []

    def missed_the_first(job_id: str) -> list[dict[str, Any]]:
        looks.append(1)
        return [] if len(looks) == 1 else real(job_id)  # its look-up ran before our upload

    monkeypatch.setattr(racer, "_job_files", missed_the_first)
    assert racer.store("job-1", "r.pdf", b"%PDF-1", DAY, email_id="m1") == first
    assert [f["id"] for f in job_files(drive_store, "job-1")] == [file_id(first)]
    trashed = [f for f in drive_store.files(include_trashed=True) if f["trashed"]]
    assert len(trashed) == 1 and trashed[0]["appProperties"]["claims_ocr_job_id"] == "job-1"


def test_large_files_go_resumable_and_survive_failed_chunks(
    archive: DriveArchive, drive_store: DriveStore
):
    data = random.Random(7).randbytes(4 * CHUNK + 1000)  # five chunks, the last short
    drive_store.fail_chunks(1)  # the library retries the chunk itself
    drive_store.fail_chunks(1, after_storing=True)  # the server kept it; the reply was lost
    drive_store.fail_chunks(3)  # more than num_retries: the archive resumes the session
    location = archive.store("job-big", "scan.tiff", data, DAY, email_id="m9")

    fid = file_id(location)
    assert drive_store.content(fid) == data
    assert drive_store.path(fid).endswith("/m9_scan.tiff")
    assert drive_store.uploads == 1  # one session, resumed, never restarted
    # Chunk 0: fails, fails after the server kept it, fails (retries spent) -> the
    # archive asks how far the server got (256 KiB: the kept try counts) -> chunk 1
    # fails twice more, then chunks 1-4 go through: 5 chunks + 4 resends.
    assert drive_store.chunks == 5 + 4
    puts = [p for m, path, p in drive_store.requests if m == "PUT" and path.startswith("/upload/")]
    assert len(puts) - drive_store.chunks == 1  # the one "bytes */N" status query
    starts = [p for m, path, p in drive_store.requests if m == "POST" and "/upload/" in path]
    assert [p["uploadType"] for p in starts] == ["resumable"]


def test_small_files_go_in_one_request(archive: DriveArchive, drive_store: DriveStore):
    archive.store("job-1", "r.jpg", b"x" * (2 * CHUNK), DAY, email_id="m1")  # at the threshold
    uploads = [p for m, path, p in drive_store.requests if path.startswith("/upload/")]
    assert [p["uploadType"] for p in uploads] == ["multipart"]


def test_every_call_names_shared_drives(archive: DriveArchive, drive_store: DriveStore):
    archive.store("job-1", "r.jpg", b"x", DAY, email_id="m1")
    archive.store("job-2", "big.bin", b"y" * (3 * CHUNK), DAY, email_id="m2")
    archive.find("job-1")

    api_calls = [
        (m, path, p)
        for m, path, p in drive_store.requests
        if not (m == "PUT" and path.startswith("/upload/"))  # chunks go to the session URL
    ]
    assert api_calls
    assert all(p.get("supportsAllDrives") == "true" for _, _, p in api_calls)
    lists = [p for m, path, p in api_calls if (m, path) == ("GET", "/drive/v3/files")]
    assert lists
    assert all(p.get("includeItemsFromAllDrives") == "true" for p in lists)
    assert all((p["corpora"], p["driveId"]) == ("drive", SHARED_DRIVE) for p in lists)


def test_an_outage_is_unavailable_and_nothing_half_done_stays(
    archive: DriveArchive, google_state: GoogleStandinState, drive_store: DriveStore
):
    google_state.fail_for("drive", 60)
    with pytest.raises(RecordsUnavailable, match="503"):
        archive.store("job-1", "r.jpg", b"x", DAY, email_id="m1")
    google_state.clear_faults()
    google_state.fail_next("drive", 429, count=3, retry_after_s=5)  # past num_retries=2
    with pytest.raises(RecordsUnavailable) as quota:
        archive.store("job-1", "r.jpg", b"x", DAY, email_id="m1")
    assert quota.value.retry_after_s == 5.0

    location = archive.store("job-1", "r.jpg", b"x", DAY, email_id="m1")
    assert [f["id"] for f in job_files(drive_store, "job-1")] == [file_id(location)]


def test_unreachable_drive_is_unavailable(archive: DriveArchive, google_standin: Any):
    google_standin.stop()
    with pytest.raises(RecordsUnavailable, match="unreachable"):
        archive.store("job-1", "r.jpg", b"x", DAY)


def test_missing_folder_is_misconfigured(
    drive_service: Any, drive_store: DriveStore, google_state: GoogleStandinState, no_backoff: None
):
    missing = DriveArchive(drive_service, "1NoSuchFolder")
    with pytest.raises(RecordsMisconfigured, match="DRIVE_FOLDER_ID 1NoSuchFolder not found"):
        missing.store("job-1", "r.jpg", b"x", DAY)
    with pytest.raises(RecordsMisconfigured, match="not found or not shared"):
        check_access(drive_service, "1NoSuchFolder")

    root = drive_store.add_folder("Claims archive", drive_id=SHARED_DRIVE)
    check_access(drive_service, root)  # fine
    google_state.fail_next("drive", 403, reason="storageQuotaExceeded")
    with pytest.raises(RecordsMisconfigured, match="shared drive"):
        DriveArchive(drive_service, root).store("job-1", "r.jpg", b"x", DAY)
    google_state.fail_next("drive", 403, reason="insufficientFilePermissions")
    with pytest.raises(RecordsMisconfigured, match="Content manager"):
        check_access(drive_service, root)


def test_member_supplied_names_cannot_escape(archive: DriveArchive, drive_store: DriveStore):
    location = archive.store("job-1", "../../x.pdf", b"x", DAY, email_id="../../etc")
    path = drive_store.path(file_id(location))
    assert path == "Claims archive/claims/2026/12/03/etc_x.pdf"
    assert folders(drive_store)[-1] == "Claims archive/claims/2026/12/03"  # no folder from it
