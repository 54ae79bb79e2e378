"""A test claim email: a generated receipt, attached the way a member sends one.

``claims-ocr send-test-claim`` puts it in the configured mailbox, so an operator can see
one claim go all the way through a new installation. The receipt is drawn, so its fields
are known and nobody's real data is used.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from services.demo.receipts import random_spec, render_receipt, to_jpeg

TEST_POLICY_NUMBER = "POL-TEST-0001"


def make_test_claim_email(
    *, to: str, sender: str = "claims-ocr-test@example.com", seed: int | None = None
) -> bytes:
    """RFC 5322 bytes of one claim email with one receipt JPEG attached."""
    rng = random.Random(seed)
    spec = random_spec(rng, kind="clinic")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"Claim test {spec.invoice_number} policy {TEST_POLICY_NUMBER}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="claims-ocr.test")
    msg.set_content(
        f"A test claim sent by `claims-ocr send-test-claim`.\nPolicy number: {TEST_POLICY_NUMBER}\n"
    )
    image = render_receipt(spec, seed=rng.randrange(1 << 30))
    msg.add_attachment(to_jpeg(image), "image", "jpeg", filename="test-receipt.jpg")
    return msg.as_bytes()
