"""Start-up checks: refuse to run on settings that would fake, lose or stall claims.

In production one missing variable must not quietly send real claims to the NCB
stand-in, read the demo inbox or move the queue into a local file, so ``claims-ocr run``
collects every problem here and refuses to start, naming each one. The demo runs on the
embedded defaults on purpose, and is checked only for features that are not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from services.config import STANDIN_NCB_API_KEY, Settings
from services.demo import SAMPLE_INBOX_DIR
from services.ocr.engine import GPU_PROVIDERS, parse_device


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
    kind, _ = parse_device(settings.ocr_device)
    if settings.ocr_engine == "onnx" and kind in GPU_PROVIDERS:
        import onnxruntime

        provider = GPU_PROVIDERS[kind][0]
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
    problems += _mailbox_problems(settings) + _google_problems(settings)
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


def _mailbox_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.mail_source == "imap":
        for name, value in (
            ("IMAP_HOST", settings.imap_host),
            ("IMAP_USER", settings.imap_user),
            ("IMAP_PASSWORD", settings.imap_password.get_secret_value()),
        ):
            if not value.strip():
                problems.append(f"MAIL_SOURCE=imap, but {name} is not set.")
    if settings.imap_ca_file is not None and not settings.imap_ca_file.is_file():
        problems.append(f"IMAP_CA_FILE={settings.imap_ca_file} is not a file.")
    return problems


def _google_problems(settings: Settings) -> list[str]:
    """Google settings that cannot work: missing ids, or no way to authenticate."""
    problems = []
    if settings.audit_sink == "sheets" and not settings.sheets_spreadsheet_id.strip():
        problems.append(
            "AUDIT_SINK=sheets, but SHEETS_SPREADSHEET_ID is not set "
            "(`claims-ocr sheets-init` creates the spreadsheet and prints its id)."
        )
    if settings.archive_sink == "drive" and not settings.drive_folder_id.strip():
        problems.append("ARCHIVE_SINK=drive, but DRIVE_FOLDER_ID is not set.")
    if not settings.uses_google:
        return problems
    if settings.google_api_root_url.strip():
        problems.append(
            "GOOGLE_API_ROOT_URL is set: it points the Google APIs at a stand-in, "
            "for tests and --demo only."
        )
    creds = settings.google_credentials_file
    if creds is None:
        problems.append(
            "GOOGLE_CREDENTIALS_FILE is not set: name a service account's JSON key "
            "(Workspace) or the OAuth client file of an installed app."
        )
    elif not creds.is_file():
        problems.append(f"GOOGLE_CREDENTIALS_FILE={creds} is not a file.")
    elif not _is_service_account(creds) and not settings.google_token.is_file():
        problems.append(
            f"No Google token at {settings.google_token}: run `claims-ocr google-auth` "
            "once to sign in and write it (or set GOOGLE_TOKEN_FILE)."
        )
    return problems


def _is_service_account(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("type") == "service_account")
    except (OSError, ValueError, AttributeError):
        return False


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
