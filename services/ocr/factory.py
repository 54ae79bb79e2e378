"""Build the OCR engine the settings ask for."""

from __future__ import annotations

from services.config import Settings
from services.ocr.engine import OcrEngine, OcrError


def make_engine(settings: Settings) -> OcrEngine:
    if settings.ocr_engine == "onnx":
        from services.ocr.onnx_engine import OnnxOcrEngine

        return OnnxOcrEngine(
            device=settings.ocr_device,
            threads=settings.ocr_threads,
            det_max_side=settings.ocr_det_max_side,
        )
    if settings.ocr_engine == "paddle":
        from services.ocr.paddle_engine import PaddleOcrEngine

        return PaddleOcrEngine(
            device=settings.ocr_device,
            threads=settings.ocr_threads,
            det_max_side=settings.ocr_det_max_side,
            model_dir=settings.data_dir / "paddle-models",
        )
    raise OcrError(f"Unknown OCR_ENGINE {settings.ocr_engine!r}; use onnx or paddle.")
