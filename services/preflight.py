"""Start-up checks: refuse to run on settings that would fake, lose or stall claims.

In production one missing variable must not quietly send real claims to the NCB
stand-in, read the demo inbox or move the queue into a local file, so ``claims-ocr run``
collects every problem here and refuses to start, naming each one. The demo runs on the
embedded defaults on purpose, and is checked only for features that are not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from services.config import STANDIN_NCB_API_KEY, Settings
from services.demo import SAMPLE_INBOX_DIR

_GPU_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def startup_problems(settings: Settings, *, broker_answers: bool) -> list[str]:
    """Every reason not to start, one sentence each (empty: go ahead)."""
    problems = feature_problems(settings)
    if not settings.demo:
        problems += production_problems(settings, broker_answers=broker_answers)
    return problems


def feature_problems(settings: Settings) -> list[str]:
    """Settings that name something this installation does not have."""
    problems = []
    if settings.ocr_engine == "paddle" and importlib.util.find_spec("paddleocr") is None:
        problems.append(
            "OCR_ENGINE=paddle, but PaddleOCR is not installed: "
            "pip install 'claims-ocr[paddle]', or use OCR_ENGINE=onnx."
        )
    if settings.ocr_engine == "onnx" and settings.ocr_device in _GPU_PROVIDERS:
        import onnxruntime

        provider = _GPU_PROVIDERS[settings.ocr_device]
        if provider not in onnxruntime.get_available_providers():
            problems.append(
                f"OCR_DEVICE={settings.ocr_device}, but ONNX Runtime here has no {provider}: "
                "install the 'gpu' extra on a machine with an NVIDIA GPU, or use OCR_DEVICE=cpu."
            )
    if settings.maildir_path is not None and not settings.maildir_path.is_dir():
        problems.append(f"MAILDIR_PATH={settings.maildir_path} is not a folder.")
    return problems


def production_problems(settings: Settings, *, broker_answers: bool) -> list[str]:
    """What production needs that the demo fills in with stand-ins."""
    problems = []
    url = settings.ncb_api_base_url.strip()
    if not url:
        problems.append(
            "NCB_API_BASE_URL is empty: set it to NCB's base URL "
            "(the NCB stand-in runs only with --demo)."
        )
    elif not url.startswith(("https://", "http://")):
        problems.append("NCB_API_BASE_URL must be an http(s) URL.")
    key = settings.ncb_api_key.get_secret_value()
    if not key.strip() or key == STANDIN_NCB_API_KEY:
        problems.append("NCB_API_KEY is not set (it is the stand-in's key): set NCB's API key.")
    if settings.mail_source == "maildir":
        if settings.maildir_path is None:
            problems.append(
                "MAILDIR_PATH is not set: name the claims mailbox folder (the default, "
                f"{settings.maildir}, is where --demo copies its sample inbox)."
            )
        elif _is_within(settings.maildir_path, SAMPLE_INBOX_DIR):
            problems.append("MAILDIR_PATH is the bundled sample inbox: name the claims mailbox.")
    broker = settings.celery_broker_url
    if not broker.startswith(("redis://", "rediss://")):
        problems.append(
            "The broker must be Redis in production (CELERY_BROKER_URL/REDIS_URL); "
            "the embedded broker is for --demo only."
        )
    elif not broker_answers:
        problems.append(
            f"Redis at {redact_url(broker)} does not answer: start it or fix REDIS_URL "
            "(production never falls back to the embedded broker)."
        )
    return problems


def production_warnings(settings: Settings) -> list[str]:
    warnings = []
    if not settings.demo and not settings.database_url:
        warnings.append(
            "The ledger is SQLite (DATABASE_URL is empty): fine on one machine; "
            "use PostgreSQL for several."
        )
    return warnings


def redact_url(url: str) -> str:
    """``redis://:secret@host/0`` -> ``redis://***@host/0``: URLs may carry passwords."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _is_within(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False
