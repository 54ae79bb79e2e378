"""Safe, bounded text from email headers: attachment file names above all.

An attachment's name is shown to reviewers, stored in the ledger, sent to NCB and used
by the archive, yet the sender chose it. ``receipt\\u202egpj.exe`` shows as
``receiptexe.jpg`` wherever right-to-left text is rendered; ``receipt.exe`` holding a
JPEG would be archived as a program. So names are cleaned once, at parse time, and for
claim documents the extension follows the bytes (the pipeline trusts bytes, never names).
"""

from __future__ import annotations

import re
import unicodedata

from services.mail.message import MAX_FILENAME_CHARS

#: Extensions that name each claim document type; the first is the one given.
CLAIM_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "png": (".png",),
    "pdf": (".pdf",),
    "tiff": (".tif", ".tiff"),
}
#: For naming a part that has no name: types recognised from the bytes...
_DETECTED_EXTENSIONS = {"gif": ".gif", "webp": ".webp", "heic": ".heic", "avif": ".avif"}
_DETECTED_EXTENSIONS |= {"bmp": ".bmp"}
#: ...or, failing that, the declared type.
_DECLARED_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/vcard": ".vcf",
    "text/x-vcard": ".vcf",
    "message/rfc822": ".eml",
    "application/zip": ".zip",
}

# Control (Cc), format (Cf: bidi overrides and isolates, zero-width characters, BOM),
# surrogate (Cs), private-use (Co) and unassigned (Cn) characters are dropped; line and
# paragraph separators (Zl, Zp) and other spaces become a plain space.
_DROP = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACE = frozenset({"Zs", "Zl", "Zp"})
_WHITESPACE_RUN = re.compile(r" {2,}")
# An extension is 1-10 letters or digits, at least one a letter ("2024" in "12.5.2024" is not).
_EXTENSION = re.compile(r"\.(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,10}$")


def clean_text(value: str, limit: int) -> str:
    """``value`` with no control or format characters, whitespace collapsed to single
    spaces, at most ``limit`` characters: safe to store and to show (no bidi spoofing, no
    terminal escapes, no line breaks)."""
    value = unicodedata.normalize("NFC", value)
    if not value.isprintable():  # fast path: no C* or Z* characters other than " "
        kept = []
        for ch in value:
            category = unicodedata.category(ch)
            if category in _SPACE or (category == "Cc" and ch.isspace()):
                kept.append(" ")
            elif category not in _DROP:
                kept.append(ch)
        value = "".join(kept)
    return _WHITESPACE_RUN.sub(" ", value).strip()[:limit]


def attachment_filename(
    name: str | None,
    *,
    part_index: int,
    kind: str | None,
    detected_type: str | None,
    declared_type: str,
) -> str:
    """A safe name for an attachment, never empty.

    The last path component only, cleaned as ``clean_text`` does, without leading or
    trailing dots, at most ``MAX_FILENAME_CHARS`` long with its extension kept. A claim
    document (``kind`` set) gets the extension of its real type unless its name already
    has one of that type's (``IMG_1.JPG`` stays, ``receipt.exe`` becomes ``receipt.jpg``).
    A missing or empty name becomes ``attachment-<part_index>`` plus an extension.
    """
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = clean_text(text, len(text)).rstrip(" .")
    match = _EXTENSION.search(text)
    stem, ext = (text[: match.start()], match.group(0)) if match else (text, "")
    stem = stem.strip(" .")
    if kind is not None:
        wanted = CLAIM_EXTENSIONS.get(kind, ())
        if wanted and ext.lower() not in wanted:
            ext = wanted[0]
    elif not stem and not ext:
        ext = _DETECTED_EXTENSIONS.get(detected_type or "", "")
        ext = ext or _DECLARED_EXTENSIONS.get(declared_type, "")
    stem = stem or f"attachment-{part_index}"
    return stem[: MAX_FILENAME_CHARS - len(ext)].rstrip(" .") + ext
