"""The one interface every OCR runtime implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from services.ocr.result import PageText


class OcrError(RuntimeError):
    """The engine could not be set up or run (bad device, missing model files)."""


class OcrEngine(Protocol):
    """Reads a batch of page images in one call.

    Pages are RGB ``uint8`` arrays of shape (H, W, 3). Batching lets a GPU engine run
    detection on several pages and recognition on the text crops of all of them at
    once; the result has one ``PageText`` per input page, in order.
    """

    name: str

    def read(self, pages: Sequence[np.ndarray]) -> list[PageText]: ...
