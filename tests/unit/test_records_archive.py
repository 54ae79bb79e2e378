"""LocalArchive: layout, idempotency, atomic writes, traversal-proof names."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.records import ArchiveConflict, LocalArchive, safe_filename
from services.records.archive import MAX_NAME

KL = ZoneInfo("Asia/Kuala_Lumpur")
WHEN = datetime(2024, 12, 18, 23, 30, tzinfo=KL)


def test_layout_and_content(tmp_path: Path):
    archive = LocalArchive(tmp_path)
    location = archive.store("job-1", "receipt_001.jpg", b"\xff\xd8jpeg", WHEN)

    assert location == str(tmp_path / "2024" / "12" / "18" / "job-1-receipt_001.jpg")
    assert Path(location).read_bytes() == b"\xff\xd8jpeg"
    assert Path(location).stat().st_mode & 0o777 == 0o600  # claim data: owner-only
    leftovers = [p.name for p in Path(location).parent.iterdir()]
    assert leftovers == ["job-1-receipt_001.jpg"]  # no temp files


def test_store_is_idempotent_and_refuses_different_bytes(tmp_path: Path):
    archive = LocalArchive(tmp_path)
    first = archive.store("job-1", "r.pdf", b"%PDF-1", WHEN)
    inode = Path(first).stat().st_ino
    assert archive.store("job-1", "r.pdf", b"%PDF-1", WHEN) == first
    assert Path(first).stat().st_ino == inode  # not rewritten
    with pytest.raises(ArchiveConflict):
        archive.store("job-1", "r.pdf", b"%PDF-2", WHEN)
    assert Path(first).read_bytes() == b"%PDF-1"


def test_find_answers_already_archived_exactly(tmp_path: Path):
    archive = LocalArchive(tmp_path)
    assert archive.find("a") is None
    loc_ab = archive.store("a-b", "x.jpg", b"1", WHEN)
    assert archive.find("a") is None  # "a-b-x.jpg" matches "a-*" but is not job a's file
    loc_a = archive.store("a", "y.jpg", b"2", WHEN)
    assert archive.find("a") == loc_a
    assert archive.find("a-b") == loc_ab
    assert archive.find("../a") is None


def test_a_name_collision_never_overwrites(tmp_path: Path):
    # "<job_id>-<name>" cannot tell job "a" + "b-x.jpg" from job "a-b" + "x.jpg":
    # the second store must fail loudly rather than replace the first file.
    archive = LocalArchive(tmp_path)
    first = archive.store("a-b", "x.jpg", b"1", WHEN)
    with pytest.raises(ArchiveConflict):
        archive.store("a", "b-x.jpg", b"2", WHEN)
    assert Path(first).read_bytes() == b"1"


def test_concurrent_stores_of_one_job_write_once(tmp_path: Path):
    archive = LocalArchive(tmp_path)
    barrier = threading.Barrier(6)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(archive.store("job-7", "r.png", b"png" * 1000, WHEN))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 6
    assert sorted(os.listdir(Path(results[0]).parent)) == ["job-7-r.png"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/scan.png", "scan.png"),
        ("..", "attachment"),
        ("", "attachment"),
        (".bashrc", "bashrc"),
        ("résumé 2024 (1).pdf", "resume_2024_1_.pdf"),
        ("a\x00b.jpg", "a_b.jpg"),
        ("收据.jpg", "jpg"),
    ],
)
def test_safe_filename(name: str, expected: str):
    assert safe_filename(name) == expected


def test_long_names_keep_their_extension():
    name = safe_filename("x" * 500 + ".jpeg")
    assert len(name) <= MAX_NAME and name.endswith(".jpeg")


def test_hostile_names_stay_inside_the_archive(tmp_path: Path):
    archive = LocalArchive(tmp_path / "archive")
    location = archive.store("job-2", "../../../outside.txt", b"x", WHEN)
    assert Path(location).resolve().is_relative_to((tmp_path / "archive").resolve())
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(ValueError):
        archive.store("../job", "r.jpg", b"x", WHEN)


@given(st.text(max_size=300))
def test_safe_filename_property(name: str):
    cleaned = safe_filename(name)
    assert 0 < len(cleaned) <= MAX_NAME
    assert not cleaned.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in cleaned)
    root = Path("/archive/2024/12/18")
    assert (root / f"job-{cleaned}").resolve().parent == root
