"""Header words misread by one character, put right from what Malaysian addresses and
company names are made of.

OCR misreads single characters of words every receipt prints ("JAIAN", "PETALINC",
"SELENGOR", "SON BHD") and reads a zero inside a number as the letter O ("NO 29O",
"4115O"). A character is changed only where the recogniser doubted it (below
``DOUBTED``), and a word only when it is not itself a known word, is at least five letters
long and is one character away from exactly one known word: real words one letter from a
known one ("UTARA", "LAMAN", "KEDAI") are read with certainty and stay as read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Street, building and place words, states and towns Malaysian receipts print.
# fmt: off
ADDRESS_WORDS = frozenset({
    "JALAN", "TAMAN", "LORONG", "PERSIARAN", "LEBUH", "LEBUHRAYA", "LINGKARAN", "LENGKOK",
    "BANDAR", "KAMPUNG", "KAWASAN", "PERINDUSTRIAN", "PERUSAHAAN", "PERNIAGAAN", "SEKSYEN",
    "SECTION", "FLOOR", "GROUND", "LEVEL", "WISMA", "MENARA", "PLAZA", "KOMPLEKS", "BANGUNAN",
    "BLOCK", "PUSAT", "MEDAN", "SIMPANG", "INDAH", "UTAMA", "BAHRU", "SUNGAI", "BUKIT",
    "KUALA", "LUMPUR", "PETALING", "SUBANG", "KLANG", "KLANA", "PUCHONG", "CHERAS", "KAJANG",
    "AMPANG", "KEPONG", "DAMANSARA", "SETAPAK", "SENTUL", "GOMBAK", "RAWANG", "SEMENYIH",
    "BANGI", "SERDANG", "KEMBANGAN", "CYBERJAYA", "PUTRAJAYA", "SETIA", "JOHOR", "SELANGOR",
    "KEDAH", "KELANTAN", "MELAKA", "MALACCA", "PAHANG", "PERAK", "PERLIS", "PENANG", "PINANG",
    "PULAU", "SABAH", "SARAWAK", "TERENGGANU", "NEGERI", "SEMBILAN", "LABUAN", "MALAYSIA",
    "DARUL", "EHSAN", "TAKZIM", "RIDZUAN", "MAKMUR", "KHUSUS", "WILAYAH", "PERSEKUTUAN",
    "INDUSTRI", "INDUSTRIAL", "CENTRE", "CENTER", "SQUARE", "AVENUE", "STREET", "COMMERCIAL",
    "SEREMBAN",
})
# fmt: on
DOUBTED = 0.95  # misread address letters were read at 0.50-0.94, real words at >= 0.999
_DIGITS_WITH_O = re.compile(r"\b(?=[\dO]*\d)[\dO]*O[\dO]*\b")
_WORD = re.compile(r"\b[A-Z]{5,}\b")
_LEGAL_SUFFIX = (
    (re.compile(r"\bS[O0]N(\.? ?BHD)\b"), r"SDN\1"),  # SON BHD
    (re.compile(r"\b(SDN\.? ?)(?:8HD|BH[O0])\b"), r"\1BHD"),  # SDN 8HD, SDN BHO
    (re.compile(r"\bS/8\b"), "S/B"),
)


_BY_LENGTH: dict[int, list[str]] = {}
for _known in sorted(ADDRESS_WORDS):
    _BY_LENGTH.setdefault(len(_known), []).append(_known)


def _one_away(word: str) -> tuple[str, int] | None:
    """The only known word of the same length one character away from ``word``, and
    where they differ."""
    near = [
        known
        for known in _BY_LENGTH.get(len(word), ())
        if sum(a != b for a, b in zip(known, word, strict=True)) == 1
    ]
    if len(near) != 1:
        return None
    return near[0], next(i for i, (a, b) in enumerate(zip(near[0], word, strict=True)) if a != b)


def correct_address(text: str, confs: Sequence[float]) -> str:
    """``text`` (upper case; ``confs`` its characters' recognition confidences) with
    doubted misreads of address words and O-for-0 digits put right."""
    if len(confs) != len(text):
        return text
    chars = list(text)
    for match in _DIGITS_WITH_O.finditer(text):
        for i in range(match.start(), match.end()):
            if chars[i] == "O" and confs[i] < DOUBTED:
                chars[i] = "0"
    for match in _WORD.finditer(text):
        found = None if match.group() in ADDRESS_WORDS else _one_away(match.group())
        if found and confs[match.start() + found[1]] < DOUBTED:
            chars[match.start() + found[1]] = found[0][found[1]]
    return "".join(chars)


def correct_company(text: str) -> str:
    """``text`` (upper case) with a misread legal suffix (SDN BHD, S/B) put right."""
    for pattern, replacement in _LEGAL_SUFFIX:
        text = pattern.sub(replacement, text)
    return text
