"""Calibrated confidence: a raw field confidence -> the probability that the field is right.

The raw confidences (``confidence.py``) are rules: evidence saturating towards 1, capped by
the weakest character. They rank receipts well but are not probabilities, so a threshold
on them says nothing about how many wrong claims reach NCB. ``calibration.json`` (shipped
in the package) maps each raw confidence onto the share of the 400 shared SROIE receipts
that were right at that confidence: isotonic regression (Platt scaling, drawn as a map of
101 corners, for the address and the invoice number), fitted by
``scripts/calibrate_confidence.py`` and judged (``make eval``) on merchant-split folds,
each fold calibrated by maps fitted on the others. Here the map is only read and
interpolated: no scikit-learn, no data, no network at run time. (``extract_claim`` still
caps total and date by the recognition of their characters: doubt about a glyph is not
learnt away.)

The reliability table and expected calibration error (how far stated confidence is from
observed accuracy) live here too, since they are how a calibration is judged.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

# The maps calibration.json holds: the four scored fields and the invoice number (judged
# against tests/data/sroie_invoice_numbers.csv). The claim's chance that total AND date are
# right is the lesser of their calibrated confidences (``extract_claim``), not a map of its
# own: out of fold, that was better calibrated than a map of the weaker raw confidence.
CALIBRATED = (
    "total_amount",
    "service_date",
    "provider_name",
    "provider_address",
    "invoice_number",
)
_PACKAGE_FILE = "calibration.json"


@dataclass(frozen=True)
class IsotonicMap:
    """A non-decreasing piecewise-linear map, clipped at its ends.

    Interpolates exactly as scikit-learn's ``IsotonicRegression.predict`` with
    ``out_of_bounds="clip"`` does, so the shipped map is the fitted one.
    """

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.xs or len(self.xs) != len(self.ys):
            raise ValueError("a calibration map needs as many outputs as inputs, at least one")
        if any(b < a for a, b in itertools.pairwise(self.xs)):
            raise ValueError("calibration inputs must be sorted")
        if any(b < a for a, b in itertools.pairwise(self.ys)):
            raise ValueError("a calibration map must not decrease")
        if not all(0.0 <= y <= 1.0 for y in self.ys):
            raise ValueError("calibrated values are probabilities, in [0, 1]")

    def __call__(self, raw: float) -> float:
        xs, ys = self.xs, self.ys
        if raw <= xs[0]:
            return ys[0]
        if raw >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, raw)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 == x0:
            return y1
        return y0 + (y1 - y0) * (raw - x0) / (x1 - x0)


@dataclass(frozen=True)
class Calibration:
    """Named maps; a name without one passes its confidence through unchanged."""

    maps: Mapping[str, IsotonicMap]

    def apply(self, name: str, raw: float) -> float:
        """The calibrated confidence of ``name`` (rounded as confidences are stored). The
        maps were fitted on raw confidences as stored, so ``raw`` is rounded alike first:
        a corner of a steep map can sit between a raw value and its rounding."""
        raw = round(raw, 4)
        mapping = self.maps.get(name)
        return raw if mapping is None else round(mapping(raw), 4)

    @classmethod
    def identity(cls) -> Calibration:
        """No calibration: the raw rule confidences (what the fitting script measures)."""
        return cls({})

    @classmethod
    def constant(cls, value: float) -> Calibration:
        """Every calibrated field at ``value``: with 1.0, what caps a field shows through."""
        return cls({name: IsotonicMap((0.0,), (value,)) for name in CALIBRATED})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        maps = {
            name: IsotonicMap(tuple(map(float, m["x"])), tuple(map(float, m["y"])))
            for name, m in data["maps"].items()
        }
        return cls(maps)


@lru_cache(maxsize=1)
def load_calibration() -> Calibration:
    """The calibration shipped in the package (read once per process)."""
    text = resources.files(__package__).joinpath(_PACKAGE_FILE).read_text(encoding="utf-8")
    return Calibration.from_json(json.loads(text))


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a reliability table."""

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_table(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]: how sure we said we were vs how often we were right.

    A confidence of exactly 1.0 falls in the last bin; empty bins are left out.
    """
    if len(confidences) != len(correct):
        raise ValueError("one outcome per confidence")
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for conf, ok in zip(confidences, correct, strict=True):
        grouped[min(int(conf * bins), bins - 1)].append((conf, ok))
    table = []
    for i, members in enumerate(grouped):
        if members:
            table.append(
                ReliabilityBin(
                    low=i / bins,
                    high=(i + 1) / bins,
                    count=len(members),
                    mean_confidence=sum(c for c, _ in members) / len(members),
                    accuracy=sum(ok for _, ok in members) / len(members),
                )
            )
    return table


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float:
    """Count-weighted mean gap between stated confidence and observed accuracy."""
    total = sum(b.count for b in table)
    if total == 0:
        return 0.0
    return sum(b.count * abs(b.accuracy - b.mean_confidence) for b in table) / total
