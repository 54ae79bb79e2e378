"""Invoice / receipt number: the token after a document-number label."""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.extraction.layout import Row
from services.extraction.provider import TextField

_LABEL = re.compile(
    r"\b(?P<label>(TAX )?INVOICE|INVOIS|NO\.? INVOIS|INV|RECEIPT|RESIT|BILL|DOC(UMENT)?|CS|"
    r"CASH ?BILL|"
    r"SLIP|TRANS(ACTION)?|TRX|TXN|ORDER|ORD|CHECK|CHK|REF|NO\.? RESIT|NO\.? BIL)"
    r"\s*(NO\b\.?|NUMBER\b|NUM\b|#)?\s*[:.#]?\s*"
    r"(?P<value>[A-Z0-9][A-Z0-9/-]*\d[A-Z0-9/-]*)",
    re.IGNORECASE,
)
# Earlier labels in this list are more specific to the document number.
_PRIORITY = (
    "INVOICE",
    "INVOIS",
    "NOINVOIS",
    "INV",
    "RECEIPT",
    "RESIT",
    "BILL",
    "CS",
    "DOC",
    "SLIP",
    "TRANS",
    "TRX",
    "TXN",
    "CHECK",
    "CHK",
    "ORDER",
    "ORD",
    "REF",
    "NO",
)


def extract_invoice_number(rows: Sequence[Row]) -> TextField:
    """The most specifically labelled document number, or None."""
    best: tuple[int, str, float] | None = None
    for row in rows:
        for m in _LABEL.finditer(row.text):
            label = re.sub(r"[^A-Z]", "", m["label"].upper()).replace("TAX", "")
            if label.startswith("CASHBILL"):
                label = "BILL"
            rank = next((i for i, p in enumerate(_PRIORITY) if label.startswith(p)), len(_PRIORITY))
            value = m["value"].strip("/-")
            if len(value) < 3 or re.fullmatch(r"\d{1,2}[:.]\d{2}", value):
                continue
            conf = row.span_confidence(m.start("value"), m.end("value"))
            if best is None or rank < best[0]:
                best = (rank, value, conf)
    if best is None:
        return TextField(None, 0.0)
    return TextField(best[1].upper(), round(best[2] * 0.9, 4))
