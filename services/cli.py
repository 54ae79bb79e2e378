"""The ``claims-ocr`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from services.config import get_settings

DOCUMENT_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return int(args.handler(args, parser) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claims-ocr",
        description="Claims OCR ingestion: mailbox -> PP-OCR -> claim fields -> NCB or review.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = commands.add_parser(
        "extract",
        help="OCR receipts and print their claim fields",
        description=(
            "Run OCR and field extraction on image/PDF/TIFF files (folders are searched for "
            "*.jpg, *.jpeg, *.png, *.tif, *.tiff, *.pdf) and print one result per file. "
            "A file that cannot be read still gets a result, routed to review with the reason."
        ),
    )
    extract.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    extract.add_argument(
        "--format", choices=("jsonl", "table"), default="jsonl", help="output format (jsonl)"
    )
    extract.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="files per OCR call (default: OCR_BATCH_SIZE)",
    )
    extract.set_defaults(handler=_extract)

    run = commands.add_parser(
        "run",
        help="run the pipeline: poller, OCR worker, submitter and beat",
        description=(
            "Start the OCR and submit workers and beat (Celery over Redis when REDIS_URL "
            "answers, else an embedded SQLite broker), and the NCB stand-in when "
            "NCB_API_BASE_URL is empty. On a first run the bundled sample inbox is copied "
            "into the data directory's inbox. Worker logs go to DATA_DIR/logs."
        ),
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="poll the mailbox once, wait until every job is at rest, print a JSON summary",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="with --once: give up waiting after this many seconds (exit 1) (900)",
    )
    run.set_defaults(handler=_run)

    from services.review_cli import add_review_commands

    add_review_commands(commands)
    return parser


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from services.runner import run

    return run(get_settings(), once=args.once, timeout_s=args.timeout)


def _iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
            )
        else:
            yield path


def _extract(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from services.ocr.factory import make_engine
    from services.ocr.pages import PageLimits
    from services.reading import read_documents, result_record, unreadable

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    settings = get_settings()
    files = list(_iter_files(args.paths))
    batch_size = args.batch_size or settings.ocr_batch_size
    limits = PageLimits(
        max_bytes=settings.max_attachment_bytes,
        max_pages=settings.max_pages,
        max_pixels=settings.max_page_pixels,
        pdf_dpi=settings.pdf_dpi,
    )
    engine = make_engine(settings)
    show_progress = sys.stderr.isatty() and len(files) > 1
    records = []
    with tqdm(total=len(files), unit="file", disable=not show_progress, file=sys.stderr) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            documents, results = [], {}
            for path in chunk:
                try:
                    if path.stat().st_size > limits.max_bytes:
                        results[str(path)] = unreadable(
                            str(path), "file_too_large", "The file is larger than the limit."
                        )
                        continue
                    documents.append((str(path), path.read_bytes()))
                except OSError as exc:
                    results[str(path)] = unreadable(
                        str(path), "unreadable_file", f"The file cannot be opened ({exc.strerror})."
                    )
            for result in read_documents(
                engine, documents, limits=limits, threshold=settings.ocr_high_confidence_threshold
            ):
                results[result.key] = result
            for path in chunk:
                record = result_record(results[str(path)])
                if args.format == "jsonl":
                    print(json.dumps(record, ensure_ascii=False), flush=True)
                else:
                    records.append(record)
                bar.update(1)
    if args.format == "table":
        _print_table(records)
    return 0


def _print_table(records: list[dict]) -> None:
    columns = ("file", "route", "confidence", "total_amount", "service_date", "provider_name")
    rows = [
        [
            Path(r["file"]).name,
            r["route"],
            f"{r['confidence']:.2f}",
            r["fields"]["total_amount"] or "-",
            r["fields"]["service_date"] or "-",
            (r["fields"]["provider_name"] or "-")[:40],
        ]
        for r in records
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
