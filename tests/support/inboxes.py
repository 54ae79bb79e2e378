"""Mail folders for intake tests: good sample emails with others delivered between them."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.demo import SAMPLE_INBOX_DIR

GOOD = ["01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml"]


def inbox_between_good_emails(tmp_path: Path, extra: dict[str, bytes]) -> Path:
    """A folder source: one good sample email, then ``extra``, then another good one."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_INBOX_DIR / GOOD[0], inbox / f"a_{GOOD[0]}")
    for name, raw in extra.items():
        (inbox / f"b_{name}.eml").write_bytes(raw)
    shutil.copy2(SAMPLE_INBOX_DIR / GOOD[1], inbox / f"c_{GOOD[1]}")
    return inbox
