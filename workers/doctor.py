"""``claims-ocr doctor``: try every configured connection and credential, say what is wrong.

Each check does the smallest real call its service allows (Gmail: the profile and the
labels; IMAP: log in and open the folder; Sheets: read the spreadsheet; Drive: read
the folder; NCB: its health endpoint, then a claim it must refuse as invalid, which
shows whether our key is accepted without filing anything). A failure names the
setting or the command that fixes it. Nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.config import Settings
from services.preflight import redact_url
from workers.wiring import Resources


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


def run_checks(settings: Settings) -> Iterator[CheckResult]:
    resources = Resources(settings)
    try:
        for name, check in _checks(settings, resources):
            try:
                message = check()
            except Exception as exc:  # every failure is a line in the report, not a crash
                yield CheckResult(name, False, explain(exc))
            else:
                yield CheckResult(name, True, message)
    finally:
        resources.close()


def _checks(settings: Settings, r: Resources) -> list[tuple[str, Callable[[], str]]]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("ledger", lambda: _ledger(r)),
        ("broker", lambda: _broker(settings)),
        (f"mailbox ({settings.mail_source})", lambda: _mailbox(settings, r)),
        (f"audit log ({settings.audit_sink})", lambda: _audit(settings, r)),
        (f"archive ({settings.archive_sink})", lambda: _archive(settings, r)),
        ("NCB", lambda: _ncb(settings)),
    ]
    return checks


def _ledger(r: Resources) -> str:
    from alembic.script import ScriptDirectory

    from services.ledger.migrate import alembic_config, current_revision

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    current = current_revision(r.ledger.engine)
    if current != head:
        raise RuntimeError(
            f"the ledger's schema is at {current or 'nothing'}, not {head}: "
            "`claims-ocr run` migrates it at start"
        )
    return f"reachable, schema {current}"


def _broker(settings: Settings) -> str:
    from workers.runner import redis_answers

    url = settings.celery_broker_url
    if not redis_answers(url):
        raise RuntimeError(f"Redis at {redact_url(url)} does not answer (REDIS_URL)")
    return f"Redis at {redact_url(url)} answers"


def _mailbox(settings: Settings, r: Resources) -> str:
    if settings.mail_source == "gmail":
        from services.google.discovery import build_service

        gmail = build_service(
            "gmail", "v1", r.google_credentials, settings.google_api_root_url
        ).users()
        profile = gmail.getProfile(userId=settings.gmail_user).execute()
        labels = gmail.labels().list(userId=settings.gmail_user).execute().get("labels", [])
        total = profile.get("messagesTotal", "?")
        return f"Gmail mailbox readable ({total} messages, {len(labels)} labels)"
    if settings.mail_source == "imap":
        source = r.mail_source
        check = getattr(source, "check_access", None)
        if check is None:
            return "IMAP source built (no access check available)"
        return str(check())
    folder = settings.maildir
    if not folder.is_dir():
        raise RuntimeError(f"{folder} is not a folder (MAILDIR_PATH)")
    return f"{folder} is a folder"


def _audit(settings: Settings, r: Resources) -> str:
    if settings.audit_sink == "sheets":
        from services.records.sheets import check_access, sheets_client

        client = sheets_client(r.google_credentials, settings.google_api_root_url)
        check_access(client, settings.sheets_spreadsheet_id)
        return "the spreadsheet is readable and writable"
    return _writable_folder(settings.audit_log.parent, "AUDIT_LOG_PATH")


def _archive(settings: Settings, r: Resources) -> str:
    if settings.archive_sink == "drive":
        from services.records.drive import check_access

        check_access(r.google_service("drive", "v3"), settings.drive_folder_id)
        return "the Drive folder is reachable"
    return _writable_folder(settings.archive, "ARCHIVE_DIR")


def _ncb(settings: Settings) -> str:
    base = settings.ncb_api_base_url.rstrip("/")
    if not base:
        raise RuntimeError("NCB_API_BASE_URL is empty (the demo starts a stand-in instead)")
    key = settings.ncb_api_key.get_secret_value()
    with httpx.Client(timeout=settings.ncb_timeout_s) as client:
        health = client.get(f"{base}/health")
        if health.status_code != 200:
            raise RuntimeError(f"NCB's /health answered {health.status_code}")
        # An empty claim must be refused as invalid (400/422); 401/403 means our key is not.
        probe = client.post(
            f"{base}/claims/submit",
            json={},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "claims-ocr-doctor"},
        )
    if probe.status_code in (401, 403):
        raise RuntimeError(f"NCB refused our key ({probe.status_code}): check NCB_API_KEY")
    if probe.status_code not in (400, 422):
        raise RuntimeError(f"NCB answered an invalid claim with {probe.status_code}, not 400")
    return "reachable, and it accepts our key"


def _writable_folder(folder: Path, setting: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".claims-ocr-doctor"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        raise RuntimeError(f"{folder} is not writable ({exc.strerror}); see {setting}") from exc
    probe.unlink()
    return f"{folder} is writable"


def explain(exc: Exception) -> str:
    """One sentence for a failed check: what is wrong and, where known, what fixes it."""
    from google.auth.exceptions import GoogleAuthError, RefreshError
    from googleapiclient.errors import HttpError

    if isinstance(exc, RefreshError):
        return (
            "Google refused the credentials (revoked or expired refresh token, or a service "
            "account without domain-wide delegation): run `claims-ocr google-auth` again, "
            f"or check GOOGLE_DELEGATED_USER ({exc.args[0] if exc.args else 'no detail'})"
        )
    if isinstance(exc, GoogleAuthError):
        return f"Google credentials cannot be used: {exc}"
    if isinstance(exc, HttpError):
        status = exc.resp.status
        if status in (401, 403):
            return (
                f"Google answered {status}: the account lacks the permission or scope "
                "(share the spreadsheet/folder with it; for Gmail, gmail.modify)"
            )
        if status == 404:
            return "Google answered 404: check the id in the settings (spreadsheet, folder, user)"
        return f"Google answered {status}"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach it: {type(exc).__name__}"
    return str(exc) or type(exc).__name__
