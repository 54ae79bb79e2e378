"""The ``claims-ocr`` command line: reads the settings once and hands them to a command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from services.config import Settings, get_settings
from services.logs import configure_logging, get_logger

if TYPE_CHECKING:
    from services.invariants import Verdict
    from services.ledger import Ledger

DOCUMENT_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"claims-ocr: {exc.error_count()} setting(s) are not valid:", file=sys.stderr)
        for problem in settings_problems(exc):
            print(f"  - {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, process="cli")
    return int(args.handler(args, parser, settings) or 0)


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per invalid setting, named by its environment variable."""
    return [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_url=False)
    ]


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
        help="run the pipeline: poller, OCR worker, submitter, beat and the admin API",
        description=(
            "Start the OCR and submit workers and beat as Celery processes, and the admin "
            "API (claims-ocr api) on API_HOST:API_PORT (not with --once). Production "
            "(the default, CLAIMS_OCR_ENV=production) first checks the settings and refuses "
            "to start, naming every problem, when NCB, its key, the mailbox or Redis is "
            "missing, or when API_PORT is taken. --demo runs on the embedded defaults instead: "
            "the bundled sample inbox "
            "(copied into DATA_DIR/inbox on a first run), the NCB stand-in when "
            "NCB_API_BASE_URL is empty, and an embedded SQLite broker when Redis does not "
            "answer. Worker and API logs go to DATA_DIR/logs. A worker, beat or the API that "
            "dies is restarted "
            "with backoff (the run gives up, exit 1, after 10 quick deaths in a row). SIGINT "
            "or SIGTERM stops the workers cleanly and exits 0 (--once: 1 if jobs are still in "
            "progress)."
        ),
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help="demo mode (CLAIMS_OCR_ENV=demo): sample inbox, NCB stand-in, no credentials",
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

    check = commands.add_parser(
        "check",
        help="check the pipeline's invariants (read-only); exit 1 on any breach",
        description=(
            "Check, read-only, that every attachment that reached the mail source is in "
            "exactly one state, no job sits in a working state past its deadline, every "
            "email marked done has all its attachments recorded, each done job has one "
            "audit row and one archived file, and (with --ncb-record) NCB holds each "
            "submitted claim exactly once. Prints a verdict; exits 0 when every invariant "
            "holds, 1 on any breach. Safe against production: it never migrates or writes."
        ),
    )
    check.add_argument(
        "--ncb-record",
        type=Path,
        default=None,
        metavar="PATH",
        help="the NCB stand-in's record of accepted claims (demo: DATA_DIR/ncb-standin.jsonl)",
    )
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(handler=_check)

    api = commands.add_parser(
        "api",
        help="serve the admin HTTP API (jobs, review queue, stats, review page)",
        description=(
            "Serve the admin HTTP API with uvicorn: /api/v1 (jobs, the review queue, "
            "approve/reject/retry, stats; every route needs an API key from "
            "'claims-ocr apikey create'), /health, /health/ready, the review page at /review "
            "and the OpenAPI docs at /docs. Migrates the ledger first. Stops on SIGINT or "
            "SIGTERM. 'claims-ocr run' starts it too (not with --once)."
        ),
    )
    api.add_argument("--host", default=None, help="address to listen on (default: API_HOST)")
    api.add_argument("--port", type=int, default=None, help="port (default: API_PORT)")
    api.set_defaults(handler=_api)

    apikey = commands.add_parser(
        "apikey",
        help="create, list and revoke the admin API's keys",
        description=(
            "Manage the admin API's keys, kept in the ledger (only a hash of each secret). "
            "Roles: viewer (read everything), reviewer (+ approve, reject, retry), admin."
        ),
    )
    keys = apikey.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    create = keys.add_parser("create", help="create a key and print it (the only time it is shown)")
    create.add_argument("name", help="who holds the key; reviewer actions show as api:NAME")
    create.add_argument(
        "--role", required=True, choices=("viewer", "reviewer", "admin"), help="what it may do"
    )
    create.set_defaults(handler=_apikey_create)
    listing = keys.add_parser("list", help="list keys (names, roles, last use; no secrets)")
    listing.add_argument("--json", action="store_true", help="print one JSON object per key")
    listing.set_defaults(handler=_apikey_list)
    revoke = keys.add_parser("revoke", help="revoke a key by name (refused from then on)")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_apikey_revoke)

    from workers.review_cli import add_review_commands

    add_review_commands(commands)

    from workers.setup_cli import add_setup_commands

    add_setup_commands(commands)
    return parser


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> int:
    from workers.runner import StartupRefused, run

    if args.demo:
        settings = settings.model_copy(update={"env": "demo"})
    try:
        return run(settings, once=args.once, timeout_s=args.timeout)
    except StartupRefused as refused:
        print(f"claims-ocr: refusing to start in {settings.env}:", file=sys.stderr)
        for problem in refused.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Fix these settings, or try it with: claims-ocr run --demo", file=sys.stderr)
        return 2


def _api(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> int:
    from services.api.server import serve
    from services.sentry import init_sentry
    from workers.wiring import Resources, api_app

    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    init_sentry(settings, "api")
    resources = Resources(settings)
    try:
        resources.ledger.migrate()
        app = api_app(resources)
        log = get_logger("workers.api")
        log.info(
            "admin API listening", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs"
        )
        serve(app, host, port)
    finally:
        resources.close()
    return 0


def _apikey_ledger(settings: Settings) -> Ledger:
    from services.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    ledger.migrate()
    return ledger


def _apikey_create(
    args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings
) -> int:
    from services.ledger import ApiKeyExists

    with _apikey_ledger(settings) as ledger:
        try:
            created = ledger.apikeys.create(args.name, args.role)
        except (ApiKeyExists, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(created.key)
    print(
        f"API key {created.view.name!r} ({created.view.role}) created; it is shown only once.",
        file=sys.stderr,
    )
    return 0


def _apikey_list(
    args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings
) -> int:
    with _apikey_ledger(settings) as ledger:
        keys = ledger.apikeys.list()
    for key in keys:
        record = {
            "id": key.id,
            "name": key.name,
            "role": str(key.role),
            "created_at": key.created_at.isoformat(),
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        }
        if args.json:
            print(json.dumps(record))
        else:
            status = "revoked" if key.revoked_at else "active"
            used = record["last_used_at"] or "never used"
            print(f"{key.name:<24} {key.role:<9} {status:<8} {key.id}  {used}")
    if not args.json and not keys:
        print("no API keys; create one with: claims-ocr apikey create NAME --role ROLE")
    return 0


def _apikey_revoke(
    args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings
) -> int:
    from services.ledger import ApiKeyNotFound

    with _apikey_ledger(settings) as ledger:
        try:
            ledger.apikeys.revoke(args.name)
        except ApiKeyNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"revoked API key {args.name!r}")
    return 0


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    from services.invariants import (
        AuditRows,
        Verdict,
        check_invariants,
        default_deadlines,
        list_done_emails,
    )
    from services.ncb import BreakerState
    from workers.wiring import Resources

    ncb_claims = None
    if args.ncb_record is not None:
        if not args.ncb_record.is_file():
            parser.error(f"no such NCB record file: {args.ncb_record}")
        from services.demo.ncb_standin import read_records

        ncb_claims = read_records(args.ncb_record)

    url = make_url(settings.ledger_url)
    database = url.database or ""
    sqlite_file = url.get_backend_name() == "sqlite" and database != ":memory:"
    if sqlite_file and not Path(database).is_file():  # opening it would create it
        verdict = Verdict()
        verdict.add("ledger_schema_missing", "The ledger database does not exist.")
        return _print_verdict(verdict, as_json=args.json)

    resources = Resources(settings)
    try:
        audit = resources.audit_log
        if not isinstance(audit, AuditRows):
            parser.error("the configured audit log cannot list its rows")
        # Listed before the ledger is read: an email is recorded before it is marked done.
        # (A folder only: a Gmail or IMAP mailbox is not listed; its cursor is the ledger's.)
        maildir = settings.mail_source == "maildir"
        done_emails = list_done_emails(settings.maildir) if maildir else []
        verdict = check_invariants(
            resources.ledger,
            audit=audit,
            archive=resources.archive,
            deadlines=default_deadlines(
                settings.stale_after_s, settings.sweep_interval_s, settings.submit_stale_after
            ),
            done_emails=done_emails,
            ncb_claims=ncb_claims,
            ready_held=resources.breaker.state is BreakerState.OPEN,
            max_email_bytes=settings.max_email_bytes,
            max_attachment_bytes=settings.max_attachment_bytes,
        )
    finally:
        resources.close()
    return _print_verdict(verdict, as_json=args.json)


def _print_verdict(verdict: Verdict, *, as_json: bool, shown_ids: int = 3) -> int:
    """Codes, counts and a few ids per breach (never PHI); 0 when all holds, else 1."""
    if as_json:
        print(json.dumps(verdict.to_dict()))
        return 0 if verdict.ok else 1
    checked = ", ".join(f"{name} {n}" for name, n in verdict.checked.items())
    if verdict.ok:
        print(f"OK: every invariant holds ({checked or 'nothing to check'})")
        return 0
    print(f"BREACH: {len(verdict.breaches)} invariant(s) broken ({checked})")
    for breach in verdict.breaches:
        ids = ", ".join(breach.ids[:shown_ids])
        more = f" (+{len(breach.ids) - shown_ids} more)" if len(breach.ids) > shown_ids else ""
        print(
            f"  {breach.code} {breach.count}: {breach.message}" + (f" [{ids}{more}]" if ids else "")
        )
    return 1


def _iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
            )
        else:
            yield path


def _extract(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings) -> int:
    from tqdm import tqdm

    from services.claim_reader import read_documents, result_record, unreadable
    from workers.wiring import build_ocr_engine, page_limits

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    files = list(_iter_files(args.paths))
    batch_size = args.batch_size or settings.ocr_batch_size
    limits = page_limits(settings)
    engine = build_ocr_engine(settings)
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
                engine,
                documents,
                limits=limits,
                threshold=settings.ocr_high_confidence_threshold,
                currency=settings.claim_currency,
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
