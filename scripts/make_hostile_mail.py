"""Write the hostile-email corpus (malformed, absurdly nested, spoofed, oversized) as .eml files.

Usage: python scripts/make_hostile_mail.py DIR
For trying a parser or a mailbox by hand; the test suite builds the same corpus itself
(tests/support/hostile_mail.py holds the builders). Deterministic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The builders live with the tests that use them; the repository root makes them importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.hostile_mail import write_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the .eml files")
    args = parser.parse_args(argv)
    paths = write_corpus(args.folder)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} emails to {args.folder} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
