"""No claim data in any log line or any Sentry event, whatever path a claim takes.

Claim emails carry known values (a member's name, a policy number, an amount, an address,
an email address) in their headers, bodies and generated receipts. ``claims-ocr run --demo
--once`` takes them through every path: submitted to NCB, sent to review (no policy
number), refused by NCB with a 400, refused credentials (401: an error logged, so a Sentry
event) then re-sent, and a corrupt attachment that fails. With SENTRY_DSN pointing at a
local stand-in, none of the values appears in DATA_DIR/logs/*.log, the run's own output or
any envelope the processes sent. (``test_pipeline.py`` checks the sample inbox's claimant
details against the logs of a clean run; this covers the error paths and Sentry.)
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from services.demo.ncb_standin import StandinServer
from services.demo.receipts import random_spec, render_receipt, to_jpeg
from tests.e2e.test_pipeline import run_env
from tests.support.sentry_standin import SentryStandin

pytestmark = pytest.mark.slow

MEMBER = "Nurul Aisyah binti Kamarudin"
POLICY = "POL-77881"
EMAIL = "nurul.aisyah.k@example.com"
ADDRESS = "12 Jalan Ampang Hilir, 55000 Kuala Lumpur"


def claim_email(n: int, *, policy: bool, attachment: tuple[str, str, str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{MEMBER} <{EMAIL}>"
    msg["To"] = "claims@insurer.example"
    msg["Subject"] = f"Medical claim {n}" + (f" - Policy No: {POLICY}" if policy else "")
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="member.example")
    msg.set_content(
        "Hello,\n\n"
        + (f"Policy Number: {POLICY}\n" if policy else "")
        + f"Member Name: {MEMBER}\nAddress: {ADDRESS}\nEmail: {EMAIL}\n\nThanks,\nNurul\n"
    )
    filename, maintype, subtype, data = attachment
    msg.add_attachment(data, maintype, subtype, filename=filename)
    return msg.as_bytes()


def receipt(seed: int) -> tuple[bytes, str]:
    """A generated clinic receipt (JPEG) and its total, e.g. ``"87.35"``."""
    rng = random.Random(seed)
    spec = random_spec(rng, kind="clinic")
    return to_jpeg(render_receipt(spec, seed=seed)), f"{spec.total:.2f}"


def test_no_planted_value_reaches_logs_or_sentry(tmp_path: Path, redis_url: str) -> None:
    data_dir = tmp_path / "data"
    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True)
    amounts = []
    # Seeds whose receipts both CPU runtimes read confidently (13 reads "0R-" for "OR-" on
    # OpenVINO and goes to review), so two claims reach NCB.
    for n, (seed, policy) in enumerate([(11, True), (14, True), (12, False)], start=1):
        jpeg, total = receipt(seed)
        amounts.append(total)
        attachment = ("receipt.jpg", "image", "jpeg", jpeg)
        (inbox / f"{n:02d}.eml").write_bytes(claim_email(n, policy=policy, attachment=attachment))
    corrupt = ("receipt.pdf", "application", "pdf", b"%PDF-1.7\n" + b"\x00garbage" * 400)
    (inbox / "04.eml").write_bytes(claim_email(4, policy=True, attachment=corrupt))
    planted = [MEMBER, POLICY, EMAIL, ADDRESS, "Jalan Ampang Hilir", "Aisyah", "nurul.aisyah"]

    with SentryStandin() as sentry, StandinServer(api_key="standin-key") as ncb:
        # The first claim sent is refused (400); the next gets 401 (credentials refused:
        # an error logged, submissions held for a second), then goes through.
        ncb.state.fail_next(400, count=1)
        ncb.state.fail_next(401, count=1)
        env = run_env(
            data_dir,
            redis_url,
            NCB_API_BASE_URL=ncb.url,
            NCB_AUTH_PAUSE_S="1",
            SENTRY_DSN=sentry.dsn,
            SENTRY_ENVIRONMENT="e2e",
            METRICS_PORT="0",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "workers.cli", "run", "--demo", "--once", "--timeout", "240"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        statuses = [r["status"] for r in ncb.state.requests]
        events = sentry.events()
        envelopes = sentry.raw.decode("utf-8", "replace")

    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["emails"] == 4
    assert summary["submitted"] >= 1  # success to NCB (after the 401 pause)
    assert summary["needs_review"] >= 2  # no policy number; refused by NCB (400)
    assert summary["failed"] == 1  # the corrupt PDF
    assert 400 in statuses and 401 in statuses and 201 in statuses

    # The 401 was logged as an error: Sentry got it, tagged, from the submit worker.
    refused = [e for e in events if "credentials" in json.dumps(e.get("logentry", {}))]
    assert refused, "no Sentry event for the refused credentials"
    assert refused[0]["environment"] == "e2e"
    assert refused[0]["tags"]["component"] == "submit"

    logs = "\n".join(p.read_text() for p in sorted((data_dir / "logs").glob("*.log")))
    assert "document unreadable" in logs and "NCB rejected the claim" in logs
    for where, text in (
        ("logs", logs),
        ("stdout", proc.stdout),
        ("stderr", proc.stderr),
        ("sentry", envelopes),
    ):
        for value in planted:
            assert value.lower() not in text.lower(), f"{value!r} in {where}"
        for amount in amounts:
            assert not re.search(rf"(?<![\d.]){re.escape(amount)}(?!\d)", text), (
                f"amount {amount} in {where}"
            )
