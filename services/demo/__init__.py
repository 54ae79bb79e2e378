"""Everything the demo runs on instead of the real world, in one place.

- the bundled sample inbox (``inbox/``: ``.eml`` files with a ``MANIFEST.json`` of their
  known answers), copied into the data directory on a first ``claims-ocr run --demo``;
- the NCB stand-in (``services.demo.ncb_standin``), a local server that
  speaks NCB's contract, used by the demo and the tests;
- the synthetic receipt and email generator (``receipts``, ``sample_inbox``) that made the
  sample inbox and makes test claims for tests, load tests and benchmarks.

Production never uses any of it: ``services.preflight`` refuses the stand-in's key and
the sample inbox outside demo mode. This module imports nothing heavy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Folder of ``.eml`` files plus ``MANIFEST.json``, shipped inside the package.
SAMPLE_INBOX_DIR: Path = Path(__file__).resolve().parent / "inbox"
SAMPLE_MANIFEST_PATH: Path = SAMPLE_INBOX_DIR / "MANIFEST.json"


def install_sample_inbox(maildir: Path) -> bool:
    """Copy the sample inbox into ``maildir`` unless that folder exists; True if copied."""
    if maildir.exists():
        return False
    maildir.mkdir(parents=True)
    for eml in sorted(SAMPLE_INBOX_DIR.glob("*.eml")):
        shutil.copy2(eml, maildir / eml.name)
    return True


__all__ = ["SAMPLE_INBOX_DIR", "SAMPLE_MANIFEST_PATH", "install_sample_inbox"]
