"""Policy number, member id and member name from an email's subject and body.

Pure text in, dataclass out. Members write these in English or Malay, in the subject
or the body, sometimes only inside a forwarded email. The member's own words win:
the subject is read first, then the body above any signature or quoted/forwarded
part, then the member's own signature, then the forwarded parts. Other people's
signatures (the clinic's, the agent's) are never read.

Only labelled values are taken ("Policy No: ...", "Nama Ahli: ..."); a bare number
or a sign-off name is never guessed at, because a wrong policy number is worse than
none: a missing one sends the claim to review, a wrong one files it on someone else.

Linear time whatever the text (an email body is attacker-controlled): no pattern here
can backtrack over a run of input more than a bounded number of times, values are read
from a bounded window after their label, and only the first ``MAX_TEXT_CHARS`` of a
body (``MAX_SUBJECT_CHARS`` of a subject) are read. Members put their details at the
top; 64 KiB is pages of text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

#: Only this much of a body is read: the member's own text and the forwards that follow.
MAX_TEXT_CHARS = 64 * 1024
MAX_SUBJECT_CHARS = 2 * 1024
#: A value is read from at most this many characters after its label (names are at most
#: 80 characters and identifiers 40, so nothing that could be taken is cut).
_VALUE_WINDOW = 256
#: Policy numbers and member ids are short; a longer "value" is not one.
MAX_ID_CHARS = 40


@dataclass(frozen=True)
class ClaimantDetails:
    policy_number: str | None = None
    member_id: str | None = None
    member_name: str | None = None


_SEP = r"\s*(?:[:：=]|[-–—](?!\w)|\bis\b)?\s*"

_POLICY_LABEL = (
    r"\bpolicy\s*(?:no\b\.?|number\b|num\b\.?|nbr\b\.?|#)"
    r"|\bpolicy(?=\s*[:：])"
    r"|\bpol\.?\s*no\b\.?"
    r"|\b(?:no|nombor|nomor|num)\b\.?\s*polisi\b"
    r"|\bpolisi\s*(?:no\b\.?|#)"
)
_MEMBER_LABEL = (
    r"\bmember(?:ship)?\s*(?:id\b|no\b\.?|number\b|num\b\.?|#)"
    r"|\b(?:no|nombor|nomor|id)\b\.?\s*(?:ahli|keahlian)\b"
    r"|\bahli\s*(?:id|no)\b\.?"
)
# Labels specific enough to trust anywhere on a line.
_NAME_LABEL_SPECIFIC = (
    r"\bmember(?:'s)?\s*name\b|\bnama\s+(?:ahli|penuh|pemegang\s+polisi|pihak\s+menuntut)\b"
    r"|\bfull\s+name\b|\bclaimant(?:'s)?\s*name\b|\bpolicy\s*holder(?:'s)?\s*name\b"
    r"|\binsured(?:'s)?\s*name\b"
)
# "Name:" / "Nama:" alone: only at the start of a line (after a bullet at most) or after
# a field separator,
# and only with a colon, so "Patient Name:", "File name:", "Nama Syarikat:" never match.
_NAME_LABEL_GENERIC = r"(?:^[ \t]*(?:[-•*·][ \t]*)?|(?<=[|,;/])\s*)(?:name|nama)\s*[:：=]"

_POLICY_RE = re.compile(rf"(?:{_POLICY_LABEL}){_SEP}", re.IGNORECASE | re.MULTILINE)
_MEMBER_RE = re.compile(rf"(?:{_MEMBER_LABEL}){_SEP}", re.IGNORECASE | re.MULTILINE)
_NAME_RE = re.compile(
    rf"(?:{_NAME_LABEL_SPECIFIC}){_SEP}|{_NAME_LABEL_GENERIC}\s*",
    re.IGNORECASE | re.MULTILINE,
)
# Where a value ends because the next field's label starts on the same line.
# ("\s*(?:no\b\.?\s*)?" rather than "\s*(?:no\b\.?)?\s*": two adjacent \s* runs can
# split a run of spaces every possible way, quadratic when the match then fails.)
_ANY_LABEL_RE = re.compile(
    rf"{_POLICY_LABEL}|{_MEMBER_LABEL}|{_NAME_LABEL_SPECIFIC}"
    r"|\b(?:name|nama|ic|nric|mykad|tel|phone|email|e-mel)\s*(?:no\b\.?\s*)?[:：]",
    re.IGNORECASE,
)

_ID_TOKEN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-/.]*[A-Za-z0-9])?")
_NAME_CUT_RE = re.compile(r"[,;|()<>\[\]\t]|\s{2,}|\s[-–—]\s")
_NAME_OK_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ .'’@/-])*$")
_NAME_STOPWORDS = frozenset(
    {"please", "see", "attached", "below", "above", "n/a", "na", "nil", "tiada", "sila", "rujuk"}
)

# Whitespace here is "[ \t]", never "\s": "^\s*" tried at each of n blank lines scans all
# the following ones, quadratic (40 s for 30,000 blank lines).
_FORWARD_HEADER_RE = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:forwarded message|original message|mesej dimajukan|mesej asal)"
    r"[ \t]*-{2,}"
    r"|begin forwarded message:"
    r"|on .{4,200}\bwrote:"
    r"|pada .{4,200}\bmenulis:"
    r"|from:[ \t][^\n]*\n[ \t]*(?:sent|date|to|tarikh|dihantar):)",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE_RE = re.compile(r"^-- ?$", re.MULTILINE)


def extract_claimant(subject: str, body: str) -> ClaimantDetails:
    """Policy number, member id and member name, each None when not found.

    Reads the first ``MAX_SUBJECT_CHARS`` of the subject and ``MAX_TEXT_CHARS`` of the
    body only, in time linear in that.
    """
    segments = list(_segments(subject[:MAX_SUBJECT_CHARS], body[:MAX_TEXT_CHARS]))
    return ClaimantDetails(
        policy_number=_first(segments, _POLICY_RE, _id_value),
        member_id=_first(segments, _MEMBER_RE, _id_value),
        member_name=_first(segments, _NAME_RE, _name_value),
    )


def _segments(subject: str, body: str) -> Iterator[str]:
    """Text to search, best source first (see module docstring)."""
    yield " ".join(subject.split())
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _FORWARD_HEADER_RE.split(text)
    own, forwarded = blocks[0], blocks[1:]
    lines = own.split("\n")
    own_main, own_signature = _split_signature("\n".join(ln for ln in lines if not _is_quoted(ln)))
    yield own_main
    yield own_signature
    quoted = "\n".join(_QUOTE_PREFIX_RE.sub("", ln) for ln in lines if _is_quoted(ln))
    for block in [*forwarded, quoted]:
        yield _split_signature(block)[0]


_QUOTE_PREFIX_RE = re.compile(r"^\s*(?:>\s?)+")


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _split_signature(text: str) -> tuple[str, str]:
    match = _SIGNATURE_RE.search(text)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.end() :]


def _first(
    segments: list[str], label: re.Pattern[str], value_of: Callable[[str], str | None]
) -> str | None:
    for segment in segments:
        for match in label.finditer(segment):
            # The rest of the label's line, bounded: copying the whole rest of the text
            # for every label would be quadratic in a text of repeated labels.
            start = match.end()
            end = segment.find("\n", start, start + _VALUE_WINDOW)
            rest = segment[start : end if end >= 0 else start + _VALUE_WINDOW]
            cut = _ANY_LABEL_RE.search(rest)
            value = value_of(rest[: cut.start()] if cut else rest)
            if value:
                return value
    return None


def _id_value(text: str) -> str | None:
    token = _ID_TOKEN_RE.match(text.strip())
    if token is None:
        return None
    value = token.group(0).upper()
    if not 4 <= len(value) <= MAX_ID_CHARS or sum(ch.isdigit() for ch in value) < 3:
        return None
    return value


def _name_value(text: str) -> str | None:
    value = _NAME_CUT_RE.split(text.strip(), maxsplit=1)[0]
    value = " ".join(value.split()).strip(" .-'’:")
    if not (2 <= len(value) <= 80) or not _NAME_OK_RE.match(value):
        return None
    words = value.split()
    if len(words) > 8 or words[0].lower() in _NAME_STOPWORDS:
        return None
    return value
