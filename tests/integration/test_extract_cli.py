"""``claims-ocr extract`` as a user runs it: files and folders in, JSON lines out."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from services.demo.receipts import images_to_pdf, random_spec, render_receipt, to_jpeg

pytestmark = pytest.mark.slow


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "extract", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_extract_prints_one_result_per_file_and_survives_bad_ones(tmp_path: Path) -> None:
    spec = random_spec(random.Random(3))
    expected = spec.expected_fields()
    image = render_receipt(spec, seed=3)
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "a_receipt.jpg").write_bytes(to_jpeg(image))
    (folder / "b_scan.pdf").write_bytes(images_to_pdf([image]))
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image or PDF")
    named = tmp_path / "renamed.png"
    named.write_bytes(b"%PDF-1.4 broken pdf behind an image name")

    result = _cli(str(folder), str(named), "--batch-size", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["file"]).name for r in records] == [
        "a_receipt.jpg",
        "b_scan.pdf",
        "c_broken.jpg",
        "renamed.png",
    ]
    for record in records:
        assert set(record) >= {"file", "route", "confidence", "fields", "field_confidence"}
        assert 0.0 <= record["confidence"] <= 1.0
        assert set(record["fields"]) == set(record["field_confidence"])
    for record in records[:2]:
        assert record["fields"]["total_amount"] == expected["total"]
        assert record["fields"]["service_date"] == expected["date"]
        assert record["fields"]["currency"] == "MYR"
    assert records[2]["route"] == "review"
    assert records[2]["reasons"][0]["code"] == "corrupt_image"
    assert records[3]["reasons"][0]["code"] == "corrupt_pdf"


def test_extract_table_format(tmp_path: Path) -> None:
    spec = random_spec(random.Random(11))
    (tmp_path / "r.jpg").write_bytes(to_jpeg(render_receipt(spec, seed=11)))
    result = _cli(str(tmp_path / "r.jpg"), "--format", "table", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["file", "route", "confidence"]
    assert row.startswith("r.jpg")


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = _cli(str(tmp_path / "nope.jpg"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr
