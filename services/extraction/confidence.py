"""Turning evidence and recognition scores into 0..1 confidences.

Kept in one place so every field's confidence means the same thing: evidence (label
strength, repetitions, arithmetic checks) saturates towards 1, and the weakest
recognised character of the value caps it, since one misread digit makes a wrong claim.
"""

from __future__ import annotations

import math

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
