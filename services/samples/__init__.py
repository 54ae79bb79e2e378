"""Synthetic receipts and the bundled sample inbox (demo data with known answers)."""

from pathlib import Path

#: Folder of ``.eml`` files plus ``MANIFEST.json``, shipped inside the package so the
#: product can copy it into its data directory for a first run or a demo.
SAMPLE_INBOX_DIR: Path = Path(__file__).resolve().parent / "inbox"
SAMPLE_MANIFEST_PATH: Path = SAMPLE_INBOX_DIR / "MANIFEST.json"

__all__ = ["SAMPLE_INBOX_DIR", "SAMPLE_MANIFEST_PATH"]
