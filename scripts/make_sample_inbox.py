"""Regenerate the bundled sample inbox (services/demo/inbox/) from its seed.

Usage: python scripts/make_sample_inbox.py [--out DIR] [--seed N]
Deterministic: the same seed writes the same bytes, so a rebuild shows no git diff
unless the generator changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.demo import SAMPLE_INBOX_DIR
from services.demo.sample_inbox import SEED, build_sample_inbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_INBOX_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for old in args.out.glob("*.eml"):
        old.unlink()
    manifest = build_sample_inbox(args.out, seed=args.seed)
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {len(manifest['emails'])} emails to {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
