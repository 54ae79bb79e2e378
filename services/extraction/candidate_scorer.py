"""Learned scoring of a field's candidates: which of the rules' candidates is the value.

Candidate generation stays rules (``total_candidates``): explainable, and the only source
of values. Where the rules weigh those candidates with hand-set evidence, a logistic model
over their features (label, layout, arithmetic, recognition) may choose better. It is
fitted by ``scripts/train_candidate_scorer.py`` on the shared SROIE receipts and judged on
merchant-split folds against the rules; ``candidate_scorer.json`` (shipped in the package)
holds the weights and, per field, whether the model won there. A field where it did not
keeps the rules' choice. Only the weights are read here: no scikit-learn, no network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_PACKAGE_FILE = "candidate_scorer.json"


@dataclass(frozen=True)
class LinearModel:
    """Logistic regression on standardised features: P(candidate is the value)."""

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        n = len(self.features)
        if not n or not len(self.means) == len(self.scales) == len(self.weights) == n:
            raise ValueError("a model needs one mean, scale and weight per feature")
        if any(s <= 0 for s in self.scales):
            raise ValueError("feature scales must be positive")

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.bias
        for name, mean, scale, weight in zip(
            self.features, self.means, self.scales, self.weights, strict=True
        ):
            z += weight * (features[name] - mean) / scale
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinearModel:
        return cls(
            tuple(data["features"]),
            tuple(map(float, data["means"])),
            tuple(map(float, data["scales"])),
            tuple(map(float, data["weights"])),
            float(data["bias"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "means": [round(x, 6) for x in self.means],
            "scales": [round(x, 6) for x in self.scales],
            "weights": [round(x, 6) for x in self.weights],
            "bias": round(self.bias, 6),
        }


@dataclass(frozen=True)
class CandidateScorer:
    """The models of the fields where the learned choice replaces the rules' one."""

    models: Mapping[str, LinearModel]

    def decides(self, field: str) -> bool:
        return field in self.models

    def pick(self, field: str, candidates: Sequence[Mapping[str, float]]) -> int | None:
        """Index of the best-scored candidate; None where the rules decide this field."""
        model = self.models.get(field)
        if model is None or not candidates:
            return None
        scores = [model.probability(c) for c in candidates]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    @classmethod
    def rules_only(cls) -> CandidateScorer:
        """No learned choice anywhere: what the training script compares against."""
        return cls({})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateScorer:
        """The models of the fields marked ``use`` (the model won there)."""
        return cls(
            {
                name: LinearModel.from_json(entry["model"])
                for name, entry in data["fields"].items()
                if entry["use"]
            }
        )


@lru_cache(maxsize=1)
def load_candidate_scorer() -> CandidateScorer:
    """The scorer shipped in the package (read once per process)."""
    text = resources.files(__package__).joinpath(_PACKAGE_FILE).read_text(encoding="utf-8")
    return CandidateScorer.from_json(json.loads(text))
