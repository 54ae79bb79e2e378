"""Turning evidence and recognition scores into 0..1 confidences.

Kept in one place so every field's confidence means the same thing: evidence (label
strength, repetitions, arithmetic checks) saturates towards 1, and the weakest
recognised character of the value caps it, since one misread digit makes a wrong claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Character confidence at and above which recognition is taken as certain.
OCR_SURE = 0.97
# Below this character confidence the value is worthless.
OCR_FLOOR = 0.3


def from_evidence(evidence: float, scale: float) -> float:
    """1 - exp(-evidence / scale): no evidence -> 0, more evidence -> closer to 1."""
    return 1.0 - math.exp(-max(evidence, 0.0) / scale)


def ocr_factor(weakest_char: float) -> float:
    """Multiplier for the weakest character confidence of a value (1.0 when sure)."""
    if weakest_char >= OCR_SURE:
        return 1.0
    return max(0.0, weakest_char - OCR_FLOOR) / (OCR_SURE - OCR_FLOOR)


# Look-alike characters (O/0, I/1, l/1, S/5, B/8, Z/2) that a value's pattern settled or
# could not settle: recognised at least this surely, the glyph is trusted as printed.
LOOKALIKE_SURE = 0.9
# Ceiling for a value whose look-alike characters were recognised less surely than that.
LOOKALIKE_CAP = 0.8
# What a look-alike costs even when clearly printed: the pattern, not the page, decided it.
LOOKALIKE_PENALTY = 0.97


def lookalike_adjusted(confidence: float, lookalike_chars: Sequence[float]) -> float:
    """``confidence`` of a value whose look-alike characters have these recognition scores.

    ``lookalike_chars`` are the recognition probabilities of the characters whose identity
    came from the value's pattern rather than from the page: letters corrected to the
    digit they resemble, and look-alike letters left as read because the pattern could
    not tell (see ``services.extraction.invoice``). Empty: unchanged.

    Rule: any such character costs ``LOOKALIKE_PENALTY``; if any was recognised below
    ``LOOKALIKE_SURE`` the value is capped at ``LOOKALIKE_CAP``, under the default 0.9
    submit threshold and under any threshold a deployment is likely to run at.

    Why: ``ocr_factor`` already scores how surely the *glyph* was seen, but an unsure "O"
    in a digit run is the very case where the recognizer hesitated between two readings,
    and the pattern fix (or the refusal to fix) is a guess a person should confirm: a
    wrong invoice number files the claim under the wrong document. A look-alike printed
    clearly (>= 0.9) is a font quirk (many receipt fonts draw O and 0 alike) that the
    pattern settles safely, so it only costs the small penalty.
    """
    if not lookalike_chars:
        return confidence
    return min(confidence * LOOKALIKE_PENALTY, lookalike_cap(lookalike_chars))


def lookalike_cap(lookalike_chars: Sequence[float]) -> float:
    """The most a value may show, calibrated or not, given its look-alike characters:
    ``LOOKALIKE_CAP`` when any was recognised below ``LOOKALIKE_SURE``, else 1.0."""
    if lookalike_chars and min(lookalike_chars) < LOOKALIKE_SURE:
        return LOOKALIKE_CAP
    return 1.0
