"""``claims-ocr review ...``: the exception queue from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from services.config import Settings
from services.ledger import SORT_COLUMNS, JobNotFound, LedgerError
from services.review import CorrectionError, approve, reject, retry
from workers.wiring import Resources

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser, Resources], int]


def add_review_commands(commands: Any) -> None:
    review = commands.add_parser(
        "review",
        help="the exception queue: list, show, approve, reject, retry",
        description="Work the exception queue (jobs in needs_review) and failed jobs.",
    )
    sub = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="list jobs (default: those waiting for review)")
    listing.add_argument("--state", action="append", help="job state (repeatable)")
    listing.add_argument("--reason", help="only jobs with this reason code")
    listing.add_argument(
        "--sort", default="created_at", help=f"one of {sorted(SORT_COLUMNS)}, '-' for descending"
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", help="one job: fields, confidence, reasons, history")
    show.add_argument("job_id")
    show.set_defaults(handler=_show)

    approve = sub.add_parser("approve", help="approve a job, optionally correcting fields")
    approve.add_argument("job_id")
    approve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="correct a field, e.g. --set total_amount=12.50 --set service_date=2024-12-25",
    )
    approve.add_argument("--by", default=None, help="reviewer id (default: your user name)")
    approve.set_defaults(handler=_approve)

    reject = sub.add_parser("reject", help="reject a job with a reason")
    reject.add_argument("job_id")
    reject.add_argument("--reason", required=True)
    reject.add_argument("--by", default=None)
    reject.set_defaults(handler=_reject)

    retry = sub.add_parser("retry", help="retry a failed job from the step that failed")
    retry.add_argument("job_id")
    retry.add_argument("--by", default=None)
    retry.set_defaults(handler=_retry)


def _actor(args: argparse.Namespace) -> str:
    return f"user:{args.by or getpass.getuser()}"


def _guard(
    action: Handler,
) -> Callable[[argparse.Namespace, argparse.ArgumentParser, Settings], int]:
    """Build the resources an action needs, turn ledger and correction errors into a
    one-line message and exit status 1, and close what was built."""

    def wrapped(
        args: argparse.Namespace, parser: argparse.ArgumentParser, settings: Settings
    ) -> int:
        resources = Resources(settings)
        try:
            resources.ledger.migrate()
            return action(args, parser, resources) or 0
        except JobNotFound:
            print(f"error: no job {args.job_id}")
        except (LedgerError, CorrectionError) as exc:
            print(f"error: {exc}")
        finally:
            resources.close()
        return 1

    return wrapped


@_guard
def _list(args: argparse.Namespace, parser: argparse.ArgumentParser, r: Resources) -> int:
    page = r.ledger.list_jobs(
        states=args.state or ["needs_review"],
        reason_code=args.reason,
        sort=args.sort,
        limit=args.limit,
        offset=args.offset,
    )
    if args.json:
        for job in page.items:
            print(json.dumps(asdict(job), default=str))
        return 0
    print(f"{page.total} job(s)")
    for job in page.items:
        conf = "-" if job.confidence is None else f"{job.confidence:.2f}"
        print(f"{job.id}  {job.state:<12}  {conf:>4}  {job.reason_code or '-':<24}  {job.filename}")
    return 0


@_guard
def _show(args: argparse.Namespace, parser: argparse.ArgumentParser, r: Resources) -> int:
    job = r.ledger.get_job(args.job_id)
    view = asdict(job)
    print(json.dumps(view, default=str, indent=2, ensure_ascii=False))
    return 0


@_guard
def _approve(args: argparse.Namespace, parser: argparse.ArgumentParser, r: Resources) -> int:
    corrections = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs FIELD=VALUE, got {item!r}")
        corrections[name.strip()] = value
    approve(r.ledger, r.dispatcher, args.job_id, corrections, _actor(args))
    print(f"approved {args.job_id}: queued for submission")
    return 0


@_guard
def _reject(args: argparse.Namespace, parser: argparse.ArgumentParser, r: Resources) -> int:
    reject(r.ledger, args.job_id, args.reason, _actor(args))
    print(f"rejected {args.job_id}")
    return 0


@_guard
def _retry(args: argparse.Namespace, parser: argparse.ArgumentParser, r: Resources) -> int:
    state = retry(r.ledger, r.dispatcher, args.job_id, _actor(args))
    print(f"retrying {args.job_id}: now {state}")
    return 0
