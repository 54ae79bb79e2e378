"""The one interface every OCR runtime implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from services.ocr.result import PageText


class OcrError(RuntimeError):
    """The engine could not be set up or run (bad device, missing model files)."""


# ONNX Runtime's execution providers for each GPU device kind, most wanted first.
GPU_PROVIDERS = {
    "cuda": ("CUDAExecutionProvider",),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
}


def parse_device(device: str) -> tuple[str, int]:
    """``OCR_DEVICE`` as (kind, GPU index): ``cpu``, ``cuda``, ``cuda:1``, ``tensorrt:0``."""
    kind, _, index = device.strip().lower().partition(":")
    if kind not in ("cpu", "cuda", "tensorrt") or (index and not index.isdigit()):
        raise OcrError(
            f"Unknown OCR device {device!r}; use cpu, cuda or tensorrt, with a GPU number "
            "for the last two if the machine has several (cuda:1)."
        )
    if kind == "cpu" and index:
        raise OcrError(f"OCR device {device!r}: the CPU takes no number.")
    return kind, int(index or 0)


class OcrEngine(Protocol):
    """Reads a batch of page images in one call.

    Pages are RGB ``uint8`` arrays of shape (H, W, 3). Batching lets a GPU engine run
    detection on several pages and recognition on the text crops of all of them at
    once; the result has one ``PageText`` per input page, in order.
    """

    name: str

    def read(self, pages: Sequence[np.ndarray]) -> list[PageText]: ...
