"""The one place that turns ``Settings`` into objects.

The command line, the runner, the worker processes and the admin API all build what
they need here, so a setting means the same thing everywhere. Everything is built on
first use: a submit worker never loads the OCR models, and a process that forks (Celery
prefork) builds its own after the fork, since connection pools and the OCR runtime's
models must not cross one. :meth:`Resources.close` releases what was built.
"""

from __future__ import annotations

import os
import ssl
from functools import cached_property
from typing import Any

import redis
from celery import Celery
from fastapi import FastAPI
from google.auth.credentials import Credentials as GoogleCredentials
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.blobs import BlobStore, LocalBlobStore
from services.config import Settings
from services.dispatch import Dispatcher
from services.ledger import Ledger
from services.mail import MaildirSource, MailSource
from services.ncb import (
    BreakerStore,
    CircuitBreaker,
    MemoryBreakerStore,
    NcbClient,
    RedisBreakerStore,
)
from services.ocr.engine import OcrEngine, OcrError
from services.ocr.pages import PageLimits
from services.records import Archive, AuditLog, CsvAuditLog, LocalArchive
from workers.app import make_app
from workers.dispatch import CeleryDispatcher


def ocr_threads(settings: Settings) -> int:
    """Engine threads per OCR process: ``OCR_THREADS``, or with 0 the cores shared out
    among ``OCR_PROCESSES`` (0 with one process: the runtime takes every core)."""
    if settings.ocr_threads or settings.ocr_processes == 1:
        return settings.ocr_threads
    return max(1, (os.cpu_count() or 1) // settings.ocr_processes)


def build_ocr_engine(settings: Settings) -> OcrEngine:
    """The OCR engine ``OCR_ENGINE`` names, on ``OCR_DEVICE`` (warmed up on a GPU)."""
    if settings.ocr_engine == "onnx":
        from services.ocr.onnx_engine import OnnxOcrEngine

        engine = OnnxOcrEngine(
            device=settings.ocr_device,
            threads=ocr_threads(settings),
            det_max_side=settings.ocr_det_max_side,
            cache_dir=settings.data_dir / "tensorrt-cache",
            cpu_runtime=settings.ocr_cpu_runtime,
            precision=settings.ocr_cpu_precision,
        )
        if settings.ocr_device != "cpu":
            engine.warm_up()  # TensorRT engines and cuDNN kernels before the first claim
        return engine
    if settings.ocr_engine == "paddle":
        from services.ocr.paddle_engine import PaddleOcrEngine

        return PaddleOcrEngine(
            model_dir=settings.paddle_model_dir,
            device=settings.ocr_device,
            threads=ocr_threads(settings),
            det_max_side=settings.ocr_det_max_side,
        )
    raise OcrError(f"Unknown OCR_ENGINE {settings.ocr_engine!r}; use onnx or paddle.")


def page_limits(settings: Settings) -> PageLimits:
    """What one attachment and one engine call may cost (pages, pixels, memory); a
    call's pixels as the device reads fastest, never over ``OCR_CALL_MAX_PIXELS``."""
    from services.claim_reader import call_max_pixels

    return PageLimits(
        max_bytes=settings.max_attachment_bytes,
        max_pages=settings.max_pages,
        max_pixels=settings.max_page_pixels,
        pdf_dpi=settings.pdf_dpi,
        max_side=settings.max_page_side,
        max_document_pixels=settings.max_document_pixels,
        call_max_pixels=call_max_pixels(settings.ocr_device, settings.ocr_call_max_pixels),
    )


def google_credentials(settings: Settings) -> GoogleCredentials:
    """The credentials every Google adapter uses, from ``GOOGLE_*`` settings.

    The demo, pointed at the bundled stand-in with no credentials file, uses a token the
    stand-in accepts: trying MAIL_SOURCE=gmail needs no Google account.
    """
    if settings.demo and settings.google_api_root_url and settings.google_credentials_file is None:
        from google.oauth2.credentials import Credentials

        return Credentials(token="demo-token")  # type: ignore[no-untyped-call]
    from services.google.auth import ALL_SCOPES, load_credentials

    return load_credentials(
        credentials_file=settings.google_credentials_file,
        token_file=settings.google_token,
        scopes=ALL_SCOPES,
        delegated_user=settings.google_delegated_user or None,
        token_uri=settings.google_oauth_token_uri if settings.google_api_root_url else "",
    )


def imap_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS that verifies the server: the system's CAs, or ``IMAP_CA_FILE`` instead."""
    cafile = str(settings.imap_ca_file) if settings.imap_ca_file else None
    return ssl.create_default_context(cafile=cafile)


class Resources:
    """A process's collaborators, built from one ``Settings`` on first use."""

    def __init__(self, settings: Settings, *, celery_app: Celery | None = None) -> None:
        self.settings = settings
        self._celery_app = celery_app

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.settings.ledger_url)

    @cached_property
    def blobs(self) -> BlobStore:
        return LocalBlobStore(self.settings.blob_path)

    @cached_property
    def ocr_engine(self) -> OcrEngine:
        return build_ocr_engine(self.settings)

    @cached_property
    def page_limits(self) -> PageLimits:
        return page_limits(self.settings)

    @cached_property
    def mail_source(self) -> MailSource:
        s = self.settings
        if s.mail_source == "gmail":
            from services.mail.gmail import GmailSource

            return GmailSource(
                self.google_service("gmail", "v1"),
                cursors=self.ledger.sources,
                query=s.gmail_query or None,
                label_prefix=s.gmail_label_prefix,
                max_email_bytes=s.max_email_bytes,
                user_id=s.gmail_user,
                num_retries=s.google_num_retries,
            )
        if s.mail_source == "imap":
            from services.mail.imap import ImapSource

            return ImapSource(
                s.imap_host,
                s.imap_port,
                username=s.imap_user,
                password=s.imap_password.get_secret_value(),
                folder=s.imap_folder,
                security=s.imap_security,
                ssl_context=imap_ssl_context(s),
                cursors=self.ledger.sources,
                max_email_bytes=s.max_email_bytes,
            )
        return MaildirSource(s.maildir)

    @cached_property
    def google_credentials(self) -> GoogleCredentials:
        return google_credentials(self.settings)

    def google_service(self, api: str, version: str) -> Any:
        """A Google API client (Gmail, Drive) at ``GOOGLE_API_ROOT_URL``, or Google's."""
        from services.google.discovery import build_service

        return build_service(
            api, version, self.google_credentials, self.settings.google_api_root_url
        )

    @cached_property
    def breaker_redis(self) -> redis.Redis | None:
        """The Redis that holds shared state (the breaker), when the broker is Redis."""
        url = self.settings.celery_broker_url
        if not url.startswith(("redis://", "rediss://")):
            return None
        return redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    @cached_property
    def breaker(self) -> CircuitBreaker:
        """Shared by every worker process through Redis; per process on the demo broker."""
        s = self.settings
        client = self.breaker_redis
        store: BreakerStore = RedisBreakerStore(client) if client else MemoryBreakerStore()
        return CircuitBreaker(
            store,
            threshold=s.ncb_breaker_threshold,
            cooldown_s=s.ncb_breaker_cooldown_s,
            probe_ttl_s=max(2 * s.ncb_timeout_s, 1.0),
        )

    @cached_property
    def ncb(self) -> NcbClient:
        s = self.settings
        return NcbClient(
            s.ncb_api_base_url,
            s.ncb_api_key,
            timeout_s=s.ncb_timeout_s,
            max_attempts=s.ncb_max_attempts,
            breaker=self.breaker,
            base_delay_s=s.ncb_retry_base_delay_s,
            max_delay_s=s.ncb_retry_max_delay_s,
            max_retry_after_s=s.ncb_max_retry_after_s,
        )

    @cached_property
    def audit_log(self) -> AuditLog:
        s = self.settings
        if s.audit_sink == "sheets":
            from services.records.sheets import SheetsAuditLog, sheets_client

            return SheetsAuditLog(
                sheets_client(self.google_credentials, s.google_api_root_url),
                s.sheets_spreadsheet_id,
                writes_per_minute=s.sheets_writes_per_minute,
            )
        return CsvAuditLog(s.audit_log)

    @cached_property
    def archive(self) -> Archive:
        s = self.settings
        if s.archive_sink == "drive":
            from services.records.drive import DriveArchive

            return DriveArchive(
                self.google_service("drive", "v3"),
                s.drive_folder_id,
                num_retries=s.google_num_retries,
            )
        return LocalArchive(s.archive)

    @cached_property
    def celery_app(self) -> Celery:
        return self._celery_app or make_app(self.settings)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return CeleryDispatcher(self.celery_app, ocr_batch_size=self.settings.ocr_batch_size)

    def close(self) -> None:
        """Release connections and pools of whatever was built."""
        built = vars(self)
        if "ncb" in built:
            self.ncb.close()
        if "ledger" in built:
            self.ledger.close()
        client = built.get("breaker_redis")
        if client is not None:
            client.close()


def mail_source_name(settings: Settings) -> str:
    """The name the mail source records its syncs under (``MailSource.name``)."""
    if settings.mail_source != "maildir":
        return settings.mail_source
    from services.mail.maildir import is_maildir

    return "maildir" if is_maildir(settings.maildir) else "folder"


def api_app(resources: Resources) -> FastAPI:
    """The admin API over this process's resources, with every readiness check."""
    from services import metrics
    from services.api.app import create_app
    from services.api.health import (
        broker_check,
        ledger_check,
        mail_source_check,
        ncb_circuit_check,
        ncb_reachability_check,
        ocr_engine_check,
        outbox_check,
        queue_depth_check,
        worker_check,
    )
    from services.preflight import feature_problems

    s = resources.settings
    ledger = resources.ledger
    metrics.set_build_info(s.ocr_engine, s.ocr_device)
    state = metrics.StateCollector(
        ledger,
        redis_client=resources.breaker_redis,
        mail_source=mail_source_name(s),
        data_paths=[s.data_dir, s.blob_path],
    )
    checks = {
        "ledger": ledger_check(ledger),
        "broker": broker_check(resources.breaker_redis),
        "mail_source": mail_source_check(ledger, mail_source_name(s), s.poll_interval_s),
        "ocr_engine": ocr_engine_check(s.ocr_engine, s.ocr_device, lambda: feature_problems(s)),
        "ncb": ncb_reachability_check(s.ncb_api_base_url),
        "ncb_circuit": ncb_circuit_check(resources.breaker),
        "queues": queue_depth_check(resources.breaker_redis),
        "workers": worker_check(resources.breaker_redis),
        "outbox": outbox_check(ledger),
    }
    return create_app(
        ledger=ledger,
        blobs=resources.blobs,
        dispatcher=resources.dispatcher,
        settings=s,
        health_checks=checks,
        page_limits=resources.page_limits,
        metrics_collector=state,
    )


_process_resources: Resources | None = None


def process_resources() -> Resources:
    """This process's resources, from its environment's settings (worker processes)."""
    global _process_resources
    if _process_resources is None:
        from celery import current_app

        from services.config import get_settings

        _process_resources = Resources(get_settings(), celery_app=current_app)
    return _process_resources


def close_process_resources() -> None:
    global _process_resources
    if _process_resources is not None:
        _process_resources.close()
        _process_resources = None
