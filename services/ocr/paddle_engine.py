"""PP-OCR on the Paddle runtime (PaddleOCR 3.x), behind the ``OcrEngine`` interface.

The ONNX engine is the default; this one exists for deployments that standardise on
Paddle (``paddlepaddle`` on CPU, ``paddlepaddle-gpu`` 3.x from Paddle's own index on
GPU). Everything runs from prepared local models: PaddleOCR is always given both the
model name and directory, and the model-hoster check is switched off, so no code path
reaches for the network.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.ocr.engine import OcrError
from services.ocr.paddle_models import PaddleModelPaths, prepare_paddle_models
from services.ocr.result import PageText, Point, TextLine, quad, reading_order

log = logging.getLogger(__name__)

_EXTRA_HINT = "install the 'paddle' extra: pip install 'claims-ocr[paddle]'"
_GPU_DEVICES = ("gpu", "cuda", "tensorrt")


def _paddle_device(device: str) -> tuple[str, bool]:
    """Map our device names to Paddle's (``cpu``, ``gpu:N``) plus whether to use TensorRT."""
    kind, _, index = device.strip().lower().partition(":")
    if kind == "cpu":
        return "cpu", False
    if kind in _GPU_DEVICES:
        if index and not index.isdigit():
            raise OcrError(f"bad OCR device {device!r}: expected e.g. 'cuda' or 'cuda:1'")
        return f"gpu:{index or 0}", kind == "tensorrt"
    raise OcrError(f"unknown OCR device {device!r}: expected cpu, gpu, cuda or tensorrt")


def _set_offline_environment(cache_home: Path) -> None:
    """Must run before ``paddlex`` is first imported: it reads these at import time.

    Values already in the environment win, so an operator can override any of them.
    """
    if "PADDLE_PDX_CACHE_HOME" not in os.environ:
        try:
            cache_home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OcrError(
                f"cannot create PaddleX cache dir {cache_home}: set PADDLE_PDX_CACHE_HOME "
                "to a writable folder"
            ) from exc
        os.environ["PADDLE_PDX_CACHE_HOME"] = str(cache_home)
    # Skip probing model hosters (HuggingFace, BOS, ...) when the pipeline is built.
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    # PaddleX silently falls back to CPU when no GPU is usable; we want an error.
    os.environ.setdefault("PADDLE_PDX_DISABLE_DEVICE_FALLBACK", "True")
    # Libraries PaddleX pulls in must not try their hubs either.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _import_paddle() -> tuple[Any, Any]:
    """Import ``paddle`` and ``paddleocr``, turning a missing install into a clear OcrError."""
    try:
        import paddle
    except ImportError as exc:
        raise OcrError(f"the paddle OCR engine needs paddlepaddle: {_EXTRA_HINT}") from exc
    except OSError as exc:  # paddle creates ~/.cache/paddle/dataset when imported
        raise OcrError(f"paddle could not start (is $HOME writable?): {exc}") from exc
    try:
        import paddleocr
    except ImportError as exc:
        raise OcrError(f"the paddle OCR engine needs paddleocr: {_EXTRA_HINT}") from exc
    return paddle, paddleocr


def _check_gpu(paddle: Any, device: str) -> None:
    if not paddle.device.is_compiled_with_cuda():
        raise OcrError(
            f"OCR device {device!r} needs a CUDA build of Paddle, but the installed "
            "paddlepaddle is CPU-only: install paddlepaddle-gpu 3.x from Paddle's package "
            "index for your CUDA version, or use device 'cpu'"
        )
    if paddle.device.cuda.device_count() < 1:
        raise OcrError(f"OCR device {device!r} requested but Paddle sees no GPU on this machine")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _quad(poly: np.ndarray) -> tuple[Point, Point, Point, Point]:
    """Four corners TL, TR, BR, BL; PaddleX's DB post-processing already orders them so."""
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    if len(pts) != 4:  # a polygon box type: fall back to its bounding rectangle
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return quad(pts)


def _page_text(result: Any, width: int, height: int) -> PageText:
    """Convert one PaddleOCR result (a dict-like ``OCRResult``) to our PageText.

    PaddleOCR gives one mean probability per line, not per character, so each character
    gets the line's score (the fallback ``TextLine`` documents).
    """
    lines = []
    for text, score, poly in zip(
        result["rec_texts"], result["rec_scores"], result["rec_polys"], strict=True
    ):
        text = str(text)
        if not text.strip():
            continue
        conf = float(score)
        lines.append(
            TextLine(
                text=text,
                box=_quad(poly),
                confidence=conf,
                char_confidences=(conf,) * len(text),
            )
        )
    return PageText(width=width, height=height, lines=reading_order(lines))


class PaddleOcrEngine:
    """PP-OCRv4 mobile det + rec through PaddleOCR's OCR pipeline on the Paddle runtime.

    Document orientation, unwarping and text-line orientation are off: receipts come
    upright from the PDF/image loader and each extra model costs time on every page.
    """

    name = "paddle"

    def __init__(
        self,
        model_dir: Path | str,
        device: str = "cpu",
        det_max_side: int = 1280,
        threads: int = 0,
        *,
        rec_batch_size: int = 6,
    ) -> None:
        if det_max_side < 32:
            raise OcrError(f"det_max_side must be at least 32, got {det_max_side}")
        root = Path(model_dir).expanduser().resolve()
        paddle_device, use_tensorrt = _paddle_device(device)
        _set_offline_environment(root / ".paddlex-cache")
        paddle, paddleocr = _import_paddle()
        if paddle_device != "cpu":
            _check_gpu(paddle, device)

        self.models: PaddleModelPaths = prepare_paddle_models(root)
        self.device = paddle_device
        self.threads = threads or _cpu_count()
        started = time.perf_counter()
        try:
            self._ocr = paddleocr.PaddleOCR(
                text_detection_model_name=self.models.det_name,
                text_detection_model_dir=str(self.models.det_dir),
                text_recognition_model_name=self.models.rec_name,
                text_recognition_model_dir=str(self.models.rec_dir),
                use_doc_orientation_classify=False,
                use_doc_unwarping=False,
                use_textline_orientation=False,
                text_det_limit_side_len=det_max_side,
                text_det_limit_type="max",
                text_recognition_batch_size=rec_batch_size,
                device=paddle_device,
                use_tensorrt=use_tensorrt,
                cpu_threads=self.threads,
            )
        except Exception as exc:  # PaddleX raises plain Exception/RuntimeError subclasses
            raise OcrError(f"could not start PaddleOCR on {paddle_device}: {exc}") from exc
        # PaddleX predictors keep per-call state; one call at a time per engine.
        self._lock = threading.Lock()
        log.info(
            "paddle OCR engine ready",
            extra={
                "device": paddle_device,
                "threads": self.threads,
                "det_max_side": det_max_side,
                "startup_s": round(time.perf_counter() - started, 2),
            },
        )

    def read(self, pages: Sequence[np.ndarray]) -> list[PageText]:
        """Read all ``pages`` (RGB uint8, HxWx3) in one PaddleOCR call, one PageText each."""
        if not pages:
            return []
        bgr_pages = []
        for index, page in enumerate(pages):
            if not (
                isinstance(page, np.ndarray)
                and page.dtype == np.uint8
                and page.ndim == 3
                and page.shape[2] == 3
            ):
                raise ValueError(f"page {index} is not an RGB uint8 array of shape (H, W, 3)")
            # PaddleX treats arrays as OpenCV-style BGR.
            bgr_pages.append(np.ascontiguousarray(page[:, :, ::-1]))
        started = time.perf_counter()
        try:
            with self._lock:
                results = list(self._ocr.predict(bgr_pages))
        except Exception as exc:
            raise OcrError(f"PaddleOCR failed on a batch of {len(pages)} page(s): {exc}") from exc
        if len(results) != len(pages):
            raise OcrError(f"PaddleOCR returned {len(results)} results for {len(pages)} pages")
        out = [
            _page_text(res, width=page.shape[1], height=page.shape[0])
            for res, page in zip(results, pages, strict=True)
        ]
        log.debug(
            "paddle OCR batch done",
            extra={
                "pages": len(pages),
                "lines": sum(len(p.lines) for p in out),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return out
