"""Prepare the PaddleOCR model folders ahead of time (image build, CI), offline.

Usage: python scripts/prepare_paddle_models.py [TARGET_DIR]
TARGET_DIR defaults to <CLAIMS_OCR_DATA_DIR>/paddle-models, where the OCR worker looks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.config import get_settings
from services.ocr.engine import OcrError
from services.ocr.paddle_models import prepare_paddle_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target_dir", nargs="?", type=Path, default=None)
    args = parser.parse_args(argv)
    target = args.target_dir or get_settings().paddle_model_dir
    try:
        paths = prepare_paddle_models(target)
    except OcrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{paths.det_name}: {paths.det_dir}")
    print(f"{paths.rec_name}: {paths.rec_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
