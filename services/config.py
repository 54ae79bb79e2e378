"""All settings in one place, read from the environment (or a ``.env`` file).

Two modes (``CLAIMS_OCR_ENV``). ``production``, the default, refuses to start on
settings that would send claims to a stand-in or read the demo inbox (see
``services.preflight``). ``demo`` runs on a fresh machine with no services and no
credentials: a data directory under the current folder, SQLite, the bundled sample
inbox and the local NCB stand-in. Secrets are ``SecretStr`` so they never print.
Turning settings into objects happens in one place, ``workers.wiring``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The key the NCB stand-in accepts; production refuses to start with it.
STANDIN_NCB_API_KEY = "standin-key"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    env: Literal["production", "demo"] = Field(default="production", alias="CLAIMS_OCR_ENV")

    # Where the ledger, blobs, audit log and archive live by default.
    data_dir: Path = Field(default=Path("data"), alias="CLAIMS_OCR_DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", alias="REDIS_URL")
    # The Celery broker when it is not REDIS_URL (``claims-ocr run --demo`` sets it to the
    # embedded SQLite broker for its workers when Redis does not answer).
    broker_url: str = Field(default="", alias="CELERY_BROKER_URL")
    blob_dir: Path | None = Field(default=None, alias="BLOB_DIR")

    # OCR engine
    ocr_engine: Literal["onnx", "paddle"] = Field(default="onnx", alias="OCR_ENGINE")
    # cpu, cuda or tensorrt; cuda:N / tensorrt:N pick the GPU on a machine with several.
    ocr_device: str = Field(
        default="cpu", pattern=r"^(cpu|(cuda|tensorrt)(:\d+)?)$", alias="OCR_DEVICE"
    )
    # What runs the models on OCR_DEVICE=cpu (a GPU always runs ONNX Runtime), and
    # OpenVINO's precision there (bf16 only where the CPU computes it natively).
    ocr_cpu_runtime: Literal["openvino", "onnxruntime"] = Field(
        default="openvino", alias="OCR_CPU_RUNTIME"
    )
    ocr_cpu_precision: Literal["bf16", "f32"] = Field(default="bf16", alias="OCR_CPU_PRECISION")
    ocr_threads: int = Field(default=0, ge=0, alias="OCR_THREADS")
    # OCR worker processes under `claims-ocr run`, each with its own engine.
    ocr_processes: int = Field(default=1, ge=1, alias="OCR_PROCESSES")
    ocr_det_max_side: int = Field(default=1280, ge=320, alias="OCR_DET_MAX_SIDE")
    ocr_batch_size: int = Field(default=8, ge=1, alias="OCR_BATCH_SIZE")
    ocr_high_confidence_threshold: float = Field(
        default=0.90, ge=0, le=1, alias="OCR_HIGH_CONFIDENCE_THRESHOLD"
    )
    # Claims are paid in this currency (ISO 4217); a receipt in another goes to review.
    claim_currency: str = Field(default="MYR", pattern=r"^[A-Z]{3}$", alias="CLAIM_CURRENCY")

    # Limits on what one attachment may cost
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, alias="MAX_ATTACHMENT_BYTES")
    # A whole raw email; bigger ones go to review unread, their bytes not kept.
    max_email_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, alias="MAX_EMAIL_BYTES")
    max_pages: int = Field(default=20, ge=1, alias="MAX_PAGES")
    max_page_pixels: int = Field(default=40_000_000, alias="MAX_PAGE_PIXELS")
    pdf_dpi: int = Field(default=200, ge=72, le=600, alias="PDF_DPI")
    # Memory budget. No page is rendered or decoded past MAX_PAGE_SIDE: detection shrinks
    # pages to OCR_DET_MAX_SIDE anyway, but recognition reads lines cut from the page, so
    # small print needs ~3x that; 4096 leaves A4/A3 at 200 DPI and 12 MP photos as they are.
    max_page_side: int = Field(default=4096, ge=640, alias="MAX_PAGE_SIDE")
    # All pages of one document as read (20 A4 pages at 200 DPI are 77 M); over: refused.
    max_document_pixels: int = Field(default=200_000_000, ge=1, alias="MAX_DOCUMENT_PIXELS")
    # Pages per engine call; a bigger batch is read in several calls (~3 bytes a pixel held).
    ocr_call_max_pixels: int = Field(default=64_000_000, ge=1, alias="OCR_CALL_MAX_PIXELS")

    # Scheduling: how often beat polls the mailbox and sweeps the ledger for stalled work.
    poll_interval_s: float = Field(default=60.0, gt=0, alias="POLL_INTERVAL_S")
    sweep_interval_s: float = Field(default=30.0, gt=0, alias="SWEEP_INTERVAL_S")
    stale_after_s: float = Field(default=20 * 60.0, gt=0, alias="STALE_AFTER_S")
    # A job left ``submitting`` this long lost its submitter (see ``submit_stale_after``);
    # unset: a minute more than the NCB client's longest call, not the OCR step's time.
    submit_stale_after_s: float | None = Field(default=None, gt=0, alias="SUBMIT_STALE_AFTER_S")
    max_ocr_attempts: int = Field(default=3, ge=1, alias="MAX_OCR_ATTEMPTS")

    # Mail source: a local Maildir/.eml folder, a Gmail/Workspace mailbox, or IMAP.
    mail_source: Literal["maildir", "gmail", "imap"] = Field(default="maildir", alias="MAIL_SOURCE")
    maildir_path: Path | None = Field(default=None, alias="MAILDIR_PATH")

    # Google (Gmail source, Sheets audit log, Drive archive). The credentials file is a
    # service account's JSON key (Workspace, with GOOGLE_DELEGATED_USER) or the OAuth
    # client of an installed app, whose token `claims-ocr google-auth` writes.
    google_credentials_file: Path | None = Field(default=None, alias="GOOGLE_CREDENTIALS_FILE")
    google_token_file: Path | None = Field(default=None, alias="GOOGLE_TOKEN_FILE")
    google_delegated_user: str = Field(default="", alias="GOOGLE_DELEGATED_USER")
    # Where the Google APIs are; empty is Google. Tests and the demo point it at the
    # bundled stand-in, which also serves the OAuth endpoints.
    google_api_root_url: str = Field(default="", alias="GOOGLE_API_ROOT_URL")
    google_num_retries: int = Field(default=5, ge=0, alias="GOOGLE_NUM_RETRIES")
    gmail_user: str = Field(default="me", alias="GMAIL_USER")
    # Empty: messages with attachments in the inbox not yet labelled {prefix}/Queued.
    gmail_query: str = Field(default="", alias="GMAIL_QUERY")
    gmail_label_prefix: str = Field(default="Claims", alias="GMAIL_LABEL_PREFIX")

    # IMAP (TLS always: port 993 with ssl, or 143 with starttls)
    imap_host: str = Field(default="", alias="IMAP_HOST")
    imap_port: int = Field(default=993, ge=1, le=65535, alias="IMAP_PORT")
    imap_security: Literal["ssl", "starttls"] = Field(default="ssl", alias="IMAP_SECURITY")
    imap_user: str = Field(default="", alias="IMAP_USER")
    imap_password: SecretStr = Field(default=SecretStr(""), alias="IMAP_PASSWORD")
    imap_folder: str = Field(default="INBOX", alias="IMAP_FOLDER")
    # A CA bundle to trust instead of the system's (a private mail server's own CA).
    imap_ca_file: Path | None = Field(default=None, alias="IMAP_CA_FILE")

    # NCB
    ncb_api_base_url: str = Field(default="", alias="NCB_API_BASE_URL")
    ncb_api_key: SecretStr = Field(default=SecretStr(STANDIN_NCB_API_KEY), alias="NCB_API_KEY")
    ncb_timeout_s: float = Field(default=15.0, gt=0, alias="NCB_TIMEOUT_S")
    ncb_max_attempts: int = Field(default=8, ge=1, alias="NCB_MAX_ATTEMPTS")
    # Some NCB tenants accept the member id where the email gives no policy number.
    ncb_member_id_as_policy: bool = Field(default=False, alias="NCB_MEMBER_ID_AS_POLICY")
    ncb_breaker_threshold: int = Field(default=5, ge=1, alias="NCB_BREAKER_THRESHOLD")
    ncb_breaker_cooldown_s: float = Field(default=30.0, gt=0, alias="NCB_BREAKER_COOLDOWN_S")
    ncb_retry_base_delay_s: float = Field(default=0.5, ge=0, alias="NCB_RETRY_BASE_DELAY_S")
    ncb_retry_max_delay_s: float = Field(default=30.0, ge=0, alias="NCB_RETRY_MAX_DELAY_S")
    # After NCB refuses our credentials (401/403), hold all submissions this long.
    ncb_auth_pause_s: float = Field(default=300.0, gt=0, alias="NCB_AUTH_PAUSE_S")
    # The longest Retry-After the client sleeps inline; a longer one pauses every worker.
    ncb_max_retry_after_s: float = Field(default=60.0, ge=0, alias="NCB_MAX_RETRY_AFTER_S")
    # The longest pause NCB's Retry-After may impose on all submissions; a longer request
    # is cut to this and logged as an error (alert on it).
    ncb_max_hold_s: float = Field(default=3600.0, gt=0, alias="NCB_MAX_HOLD_S")

    # Audit log: a local CSV file, or a Google Sheet (one tab per month).
    audit_sink: Literal["csv", "sheets"] = Field(default="csv", alias="AUDIT_SINK")
    audit_log_path: Path | None = Field(default=None, alias="AUDIT_LOG_PATH")
    sheets_spreadsheet_id: str = Field(default="", alias="SHEETS_SPREADSHEET_ID")
    # Sheets allows 60 write requests a minute per user; stay under it.
    sheets_writes_per_minute: int = Field(default=50, ge=1, alias="SHEETS_WRITES_PER_MINUTE")
    # Archive of originals: a local folder, or a Google Drive folder (shared drives too).
    archive_sink: Literal["local", "drive"] = Field(default="local", alias="ARCHIVE_SINK")
    archive_dir: Path | None = Field(default=None, alias="ARCHIVE_DIR")
    drive_folder_id: str = Field(default="", alias="DRIVE_FOLDER_ID")

    # Admin HTTP API (``claims-ocr api``; ``claims-ocr run`` starts it too).
    api_host: str = Field(default="127.0.0.1", alias="API_HOST")
    api_port: int = Field(default=8000, ge=1, le=65535, alias="API_PORT")
    # Origins allowed to call the API from a browser, comma-separated; empty: none.
    api_cors_origins: str = Field(default="", alias="API_CORS_ORIGINS")
    # Requests per API key, e.g. "120/minute" or "10/second;1000/hour" (moving window).
    api_rate_limit: str = Field(default="120/minute", alias="API_RATE_LIMIT")
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, alias="API_MAX_BODY_BYTES")

    # Prometheus /metrics of each Celery worker node and beat (the API serves its own on
    # API_PORT). `claims-ocr run` gives its OCR worker this port, the submit worker +1 and
    # beat +2; 0 turns them off.
    metrics_port: int = Field(default=9108, ge=0, le=65535, alias="METRICS_PORT")
    # Sentry: on only when SENTRY_DSN is set; events are stripped of claim data first.
    sentry_dsn: SecretStr = Field(default=SecretStr(""), alias="SENTRY_DSN")
    # Empty: CLAIMS_OCR_ENV (production or demo).
    sentry_environment: str = Field(default="", alias="SENTRY_ENVIRONMENT")
    sentry_traces_sample_rate: float = Field(
        default=0.0, ge=0, le=1, alias="SENTRY_TRACES_SAMPLE_RATE"
    )

    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # auto: JSON lines unless writing to a terminal.
    log_format: Literal["auto", "json", "console"] = Field(default="auto", alias="LOG_FORMAT")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("api_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError('must be a rate like "120/minute" or "10/second;1000/hour"') from None
        return value

    @property
    def api_cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.api_cors_origins.split(",") if o.strip()]

    @property
    def demo(self) -> bool:
        return self.env == "demo"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def ledger_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ledger.db').resolve()}"

    @property
    def submit_stale_after(self) -> float:
        """Seconds after which a ``submitting`` job's submitter is presumed dead.

        Default: the NCB client's longest call (every attempt timing out, each wait the
        longest backoff or inline Retry-After) plus a minute, so a live call is never
        taken over; 600 s with the default NCB settings.
        """
        if self.submit_stale_after_s is not None:
            return self.submit_stale_after_s
        longest_wait = max(self.ncb_retry_max_delay_s, self.ncb_max_retry_after_s)
        attempts = self.ncb_max_attempts
        return attempts * self.ncb_timeout_s + (attempts - 1) * longest_wait + 60.0

    @property
    def blob_path(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def maildir(self) -> Path:
        return self.maildir_path or self.data_dir / "inbox"

    @property
    def audit_log(self) -> Path:
        return self.audit_log_path or self.data_dir / "audit.csv"

    @property
    def archive(self) -> Path:
        return self.archive_dir or self.data_dir / "archive"

    @property
    def google_token(self) -> Path:
        return self.google_token_file or self.data_dir / "google-token.json"

    @property
    def google_oauth_token_uri(self) -> str:
        """The OAuth token endpoint: the stand-in's when the APIs are, else Google's."""
        root = self.google_api_root_url.rstrip("/")
        return f"{root}/token" if root else "https://oauth2.googleapis.com/token"

    @property
    def google_oauth_auth_uri(self) -> str:
        root = self.google_api_root_url.rstrip("/")
        return f"{root}/o/oauth2/auth" if root else "https://accounts.google.com/o/oauth2/auth"

    @property
    def uses_google(self) -> bool:
        return (
            self.mail_source == "gmail"
            or self.audit_sink == "sheets"
            or self.archive_sink == "drive"
        )

    @property
    def paddle_model_dir(self) -> Path:
        """Under the data dir, so a worker needs no other writable place."""
        return self.data_dir / "paddle-models"


#: Where secrets mounted as files are read from (Docker/Compose secrets); one file per
#: setting, named like its variable in lower case (e.g. ``ncb_api_key``).
SECRETS_DIR_VARIABLE = "CLAIMS_OCR_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def secrets_dir() -> Path | None:
    """The secrets folder when there is one (an environment variable still wins over it)."""
    folder = Path(os.environ.get(SECRETS_DIR_VARIABLE) or DEFAULT_SECRETS_DIR)
    return folder if folder.is_dir() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(_secrets_dir=secrets_dir())  # type: ignore[call-arg]
