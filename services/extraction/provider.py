"""Provider name and address from the receipt header.

Malaysian receipts open with a logo or brand line, the registered business name (often
with SDN BHD, ENTERPRISE, TRADING, KLINIK ...), sometimes wrapped over two or three rows,
its company registration number, the address over a few rows, then phone / GST /
"TAX INVOICE" rows. The name is the first header row carrying a legal suffix (else a
business word, else the first name-like row), extended over the rows it wraps onto; the
address is the run of rows after it up to the first contact, tax or document row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.extraction.address_words import correct_address, correct_company
from services.extraction.dates import find_dates
from services.extraction.layout import Row, Span
from services.extraction.money import find_amounts

_LEGAL = re.compile(
    r"(?:\b|(?<=\d))(SDN\.? ?BHD|SDN|BHD|BERHAD|S/B|S B|ENTERPRISES?|TRADING|TRADERS?|PLT|"
    r"CO\.?|COMPANY|LTD|LIMITED|HOLDINGS|CORPORATION|PERNIAGAAN|SYARIKAT)(?=\W|$)"
)
_BUSINESS = re.compile(
    r"\b(CLINIC|KLINIK|FARMASI|PHARMACY|POLIKLINIK|HOSPITAL|DENTAL|PERGIGIAN|MEDICAL|PERUBATAN|"
    r"RESTAURANT|RESTORAN|CAFE|BAKERY|HARDWARE|STATIONERY|MART|MARKET|PASARAYA|GROCER|"
    r"SUPERMARKET|MINIMARKET|MACHINERY|ELECTRICAL|BOOKS?|STORE|SHOP|KEDAI|BISTRO|"
    r"INDUSTRIES|MARKETING|SERVICES?|CENTRE|CENTER|OPTICAL|OPTOMETRY|LABORATORY)\b"
)
_REG_NO = re.compile(
    r"\(?\b(CO\.? ?REG(\.|ISTRATION)?|COMPANY ?(NO|REG|RO)|CO\.? ?NO|ROC|REG\.? ?NO|BR ?NO)\b.*$|"
    r"\(?\b[A-Z]{0,3}\d{5,12} ?[-·.]? ?[A-Z]\b\)?|\(\s*[A-Z]{0,3}\d{4,}[^)]{0,4}\)"
)
_NOT_NAME = re.compile(
    r"\b(TAX INVOICE|INVOICE|INVOIS|RECEIPT|RESIT|WELCOME|SELAMAT|CASH BILL|BILL|GST|SST|TEL|FAX|"
    r"PHONE|FORMERLY|LICENSEE|OFFICIAL|COPY|ORDER|DIMILIKI|OWNED|THANK|TAX|SERVED|CASHIER|"
    r"PREPAY|CHIT|RETURNABLE)\b"
)
_ADDRESS_WORD = re.compile(
    r"\b(NO|LOT|JALAN|JLN|JL|LEVEL|LVL|TAMAN|TMN|FLOOR|FLR|BLOK|BLOCK|LORONG|LRG|PERSIARAN|"
    r"KAWASAN|BANDAR|UNIT|SUITE|WISMA|PLAZA|MALL|KOMPLEKS|KAMPUNG|KG|BATU|SEKSYEN|SECTION|"
    r"SS\d*|PJU|USJ|GROUND|MEDAN|PUSAT|BANGUNAN|ARAS|SIMPANG|OFF)\b"
)
_REGION = re.compile(
    r"\b(MALAYSIA|SELANGOR|JOHOR|KEDAH|KELANTAN|MELAKA|MALACCA|PAHANG|PERAK|PERLIS|"
    r"PENANG|PULAU PINANG|SABAH|SARAWAK|TERENGGANU|NEGERI SEMBILAN|KUALA LUMPUR|KL|"
    r"PUTRAJAYA|LABUAN|DARUL \w+|D\.?E\.?)\b"
)
_STOP = re.compile(
    r"\b(TEL|TELEFON|TELEPHONE|PHONE|FAX|H/?P|HP|MOBILE|EMAIL|E-MAIL|WEBSITE|WWW|HTTP|GST|"
    r"GST\w*|SST|TAX|INVOICE|INVOIS|RECEIPT|RESIT|DATE|TARIKH|CASHIER|BILL|ORDER|TABLE|SERVER|DOC|"
    r"REG|ROC|BUSINESS|OPEN|HOURS|GUEST|CHECK)\b|@|\.COM\b"
)
_PHONE = re.compile(r"(?<!\d)0\d{1,2}[- ]?\d{3,4}[- ]?\d{4}(?!\d)|\b1[3-8]00[- ]?\d")
_CONTACT_TAIL = re.compile(r"\s*\b(TEL|TELEFON|PHONE|FAX|H/?P|GST|EMAIL)\b.*$")
# A five-digit postcode, not glued to letters or digits ("PT17920") and not the number of
# a lot, plot or building ("LOT 37636", "NO. 12345"), which is as long.
_POSTCODE = re.compile(r"(?<![A-Z0-9])\d{5}(?![0-9])")
_LOT_BEFORE = re.compile(r"\b(LOT|PLOT|P\.?T|PTD|NO|UNIT|GERAN|HS ?\(D\)|HSD)\.?\s*$")
# A chain's outlet under its head-office address: store number and branch ("1076-IJOK",
# "1317 TRILLIUM S6 BESI"); the outlet is where the claim was spent.
_OUTLET = re.compile(r"\d{4}\s*[- ]\s*[A-Z][A-Z0-9 .'/-]*")
_HEADER_ROWS = 16
_NAME_SEARCH_ROWS = 9


@dataclass(frozen=True)
class TextField:
    value: str | None
    confidence: float
    source: tuple[Span, ...] = ()  # the whole rows the value was taken from


def _mean_conf(rows: Sequence[Row]) -> float:
    confs = [c for r in rows for ch, c in zip(r.text, r.confs, strict=True) if not ch.isspace()]
    return sum(confs) / len(confs) if confs else 0.0


def _clean(text: str) -> str:
    text = _REG_NO.sub("", text)
    return re.sub(r"\s+", " ", text).strip(" -:,*._")


def _name_like(text: str) -> bool:
    core = text.replace(" ", "")
    letters = sum(ch.isalpha() for ch in core)
    return (
        letters >= 2
        and letters >= 0.6 * len(core)
        and not _NOT_NAME.search(text)
        and not find_amounts(text)
        and not find_dates(text)
    )


def _is_fragment(text: str) -> bool:
    """A row that cannot be a whole name: only suffix/business words, or a broken bracket."""
    rest = _BUSINESS.sub("", _LEGAL.sub("", text))
    rest = re.sub(r"\(\w{1,3}\)|[&.,]", " ", rest).strip()
    return not rest or text.count("(") != text.count(")") or text.lstrip().startswith("&")


def _has_postcode(text: str) -> bool:
    return any(not _LOT_BEFORE.search(text[: m.start()]) for m in _POSTCODE.finditer(text))


def _address_like(text: str) -> bool:
    return bool(_ADDRESS_WORD.search(text) or re.search(r"\d", text))


def _name_rows(texts: list[str], raw: list[str]) -> tuple[list[int], bool]:
    """Indices of the header rows that make up the provider name, and whether it is sure."""
    limit = min(len(texts), _NAME_SEARCH_ROWS)
    lowercase_page = sum(r.islower() for r in raw) > len(raw) / 2

    def candidate(i: int) -> bool:
        # Lower-case rows on an upper-case receipt are stamps or handwriting, not the name.
        return _name_like(_clean(texts[i])) and (lowercase_page or not raw[i].islower())

    found = next((i for i in range(limit) if candidate(i) and _LEGAL.search(texts[i])), None)
    strong = found is not None
    if found is None:
        found = next((i for i in range(limit) if candidate(i) and _BUSINESS.search(texts[i])), None)
    if found is None:
        found = next(
            (i for i in range(limit) if candidate(i) and not _address_like(texts[i])), None
        )
    if found is None:
        return [], False
    rows = [found]
    # Wrapped names: "LIAN CHI PU TIAN VEGETARIAN" / "RESTAURANT SDN BHD".
    while _is_fragment(_clean(texts[rows[0]])) and rows[0] > 0 and candidate(rows[0] - 1):
        rows.insert(0, rows[0] - 1)
        if len(rows) >= 4:
            break
    while (
        rows[-1] + 1 < len(texts)
        and candidate(rows[-1] + 1)
        and _is_fragment(_clean(texts[rows[-1] + 1]))
        and not _address_like(_clean(texts[rows[-1] + 1]))
        and len(rows) < 4
    ):
        rows.append(rows[-1] + 1)
    return rows, strong


def _town_before_state(text: str, following: str) -> bool:
    """A town or district printed between the postcode and the state ("39100 BRINCHANG," /
    "CAMERON HIGHLANDS," / "PAHANG"): a short row of words with the state right after."""
    words = re.findall(r"[A-Z]+", text)
    return (
        not re.search(r"\d", text)
        and 0 < len(words) <= 3
        and not _STOP.search(text)
        and bool(_REGION.search(following))
        and not _STOP.search(following)
    )


def _address(header: Sequence[Row], texts: list[str], start: int) -> tuple[str | None, list[Row]]:
    parts: list[str] = []
    used: list[Row] = []
    skipped = 0
    seen_postcode = False
    for k in range(start, len(header)):
        row, text = header[k], texts[k]
        following = texts[k + 1] if k + 1 < len(texts) else ""
        cleaned = _REG_NO.sub("", text).strip(" -:,.()")
        if not cleaned or (not used and _PHONE.fullmatch(cleaned)):
            continue  # a registration-number row between the name and the address
        if _STOP.search(text) or _PHONE.search(text):
            head = _CONTACT_TAIL.sub("", text).strip(" ,")
            labelled_tail = bool(_CONTACT_TAIL.search(text))
            if (
                used
                and head
                and labelled_tail
                and not _STOP.search(head)
                and not _PHONE.search(head)
            ):
                parts.append(head)  # "50480 KUALA LUMPUR TEL: 03-..." keeps its head
                used.append(row)
            if used:
                break
            skipped += 1
        elif find_dates(text) or any(not a.comma_decimal for a in find_amounts(text)):
            if used:
                break
            skipped += 1
        elif not used and not _address_like(text):
            skipped += 1
        elif not used and (_LEGAL.search(text) or _NOT_NAME.search(text)):
            skipped += 1  # "OWNED BY ... SDN BHD", "FORMERLY KNOWN AS ..." before the address
        elif seen_postcode and not (
            _REGION.search(text)
            or text.startswith("(")
            or _town_before_state(text, following)
            or (_REGION.search(parts[-1]) and _OUTLET.fullmatch(text))
        ):
            break  # after the postcode only the state/country or the outlet follow
        else:
            parts.append(text)
            used.append(row)
            seen_postcode = seen_postcode or _has_postcode(text)
        if skipped > 3 or len(parts) >= 6:
            break
    return (" ".join(parts).strip() or None), used


def header_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows name and address are read from: the first rows of the first page's top half."""
    return [r for r in rows[:_HEADER_ROWS] if r.page == 0 and r.rel_y < 0.5]


def extract_provider(rows: Sequence[Row]) -> tuple[TextField, TextField]:
    """(provider name, provider address) from the header rows of the first page."""
    header = header_rows(rows)
    if not header:
        return TextField(None, 0.0), TextField(None, 0.0)
    raw = [r.text.strip() for r in header]
    texts = [t.upper() for t in raw]

    name_idx, strong = _name_rows(texts, raw)
    if not name_idx:
        return TextField(None, 0.0), TextField(None, 0.0)
    name = correct_company(_clean(" ".join(_clean(texts[i]) for i in name_idx)))
    # One misread letter makes the name wrong: its weakest letter counts beside the mean
    # (out of fold, calibration error 0.043 -> 0.021 on the shared receipts).
    name_rows = [header[i] for i in name_idx]
    weakest = min(r.value_confidence(0, len(r.text)) for r in name_rows)
    name_conf = weakest * _mean_conf(name_rows) * (0.9 if strong else 0.6)

    # The address rows (after the name) are read with doubted misreads put right.
    start = name_idx[-1] + 1
    corrected = texts[:start] + [
        correct_address(r.text.upper(), r.confs).strip() for r in header[start:]
    ]
    address, used = _address(header, corrected, start)
    has_postcode = bool(address and _has_postcode(address))
    addr_conf = _mean_conf(used) * (0.85 if has_postcode else 0.5)
    name_source = tuple(Span.whole(header[i]) for i in name_idx)
    return (
        TextField(name or None, round(name_conf, 4), name_source),
        TextField(address, round(addr_conf, 4), tuple(Span.whole(row) for row in used)),
    )
