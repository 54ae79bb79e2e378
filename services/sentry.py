"""Error reporting to Sentry, for every process, with claim data stripped before sending.

:func:`init_sentry` is called by each process (API, Celery workers, beat, the runner) and
does nothing unless ``SENTRY_DSN`` is set. What leaves the machine is decided here, not by
the SDK's defaults: no request bodies, query strings, cookies, user or local variables; a
short allow-list of headers and of ids (job, email, task, request); exception, log and
breadcrumb text scrubbed of email addresses, amounts and policy-number-like tokens.
Everything else an event carries is dropped, so a field a new SDK version adds is not
sent until it is allowed here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from services.config import Settings
from services.logs import get_logger

log = get_logger(__name__)

#: Keys (in ``extra``, contexts, breadcrumb data, at any depth) whose values are sent.
ALLOWED_KEYS = frozenset(
    {
        "job_id",
        "job_ids",
        "email_id",
        "task_id",
        "request_id",
        "task",
        "task_name",
        "component",
        "process",
        "logger",
        "method",
        "status",
        "status_code",
        "reason",
        "error",
        "category",
    }
)
#: Request headers sent as they are; others are left out.
ALLOWED_HEADERS = frozenset(
    {"content-type", "content-length", "accept", "user-agent", "x-request-id", "host"}
)
#: Contexts the SDK fills with facts about the machine, never claim data.
SDK_CONTEXTS = frozenset({"runtime", "os", "device"})
#: Top-level event fields kept (after their own scrubbing); the rest is dropped.
EVENT_FIELDS = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "type",
        "level",
        "logger",
        "platform",
        "release",
        "environment",
        "server_name",
        "sdk",
        "modules",
        "transaction",
        "transaction_info",
        "fingerprint",
        "tags",
        "contexts",
        "extra",
        "exception",
        "threads",
        "stacktrace",
        "message",
        "logentry",
        "breadcrumbs",
        "request",
        "spans",
        "measurements",
    }
)
_FRAME_FIELDS = ("filename", "abs_path", "module", "function", "lineno", "colno", "in_app")

_KEEP = (
    r"(?P<keep>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\b[0-9a-f]{16,}\b)"
)
_EMAIL = r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
_AMOUNT = (
    r"(?P<amount>(?:\b(?:RM|MYR|USD|SGD)|\$)\s?\d[\d,]*(?:\.\d+)?"
    r"|\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|\b\d+\.\d{1,2}\b)"
)
# Policy, member, IC and phone numbers: a token of letters, digits, '-' and '/' with two
# digits or more (five characters at least), or a run of six digits or more.
_NUMBER = (
    r"(?P<number>(?<![\w/-])(?=[A-Za-z0-9/-]*\d[A-Za-z0-9/-]*\d)[A-Za-z0-9][A-Za-z0-9/-]{4,}"
    r"(?![\w/-])|\b\d{6,}\b)"
)
_SCRUB = re.compile("|".join((_KEEP, _EMAIL, _AMOUNT, _NUMBER)))


def scrub_text(text: str) -> str:
    """``text`` with email addresses, amounts and id-like numbers replaced (uuids and
    hex digests, our own ids, are kept)."""

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup or "number"
        return match.group(0) if kind == "keep" else f"[{kind}]"

    return _SCRUB.sub(replace, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub_text(str(value))


def _allowed(data: Any) -> Any:
    """Only allow-listed keys (at any depth), their values scrubbed; None when empty."""
    if not isinstance(data, Mapping):
        return None
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            inner = _allowed(value)
            if inner:
                kept[str(key)] = inner
        elif str(key) in ALLOWED_KEYS:
            kept[str(key)] = _scrub_value(value)
    return kept or None


def _url(url: Any) -> str | None:
    """Scheme, host and path only: no query string, fragment or credentials."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, scrub_text(parts.path), "", ""))


def _frames(stacktrace: Any) -> dict[str, Any] | None:
    """Where it happened, without local variables or source lines."""
    if not isinstance(stacktrace, Mapping):
        return None
    frames = [
        {k: frame[k] for k in _FRAME_FIELDS if k in frame}
        for frame in stacktrace.get("frames") or []
        if isinstance(frame, Mapping)
    ]
    return {"frames": frames}


def _exception(values: Any) -> dict[str, Any]:
    out = []
    for item in (values or {}).get("values") or []:
        entry: dict[str, Any] = {"type": item.get("type"), "module": item.get("module")}
        if item.get("value"):
            entry["value"] = scrub_text(str(item["value"]))
        if item.get("mechanism"):
            mechanism = item["mechanism"]
            entry["mechanism"] = {k: mechanism[k] for k in ("type", "handled") if k in mechanism}
        stack = _frames(item.get("stacktrace"))
        if stack:
            entry["stacktrace"] = stack
        out.append(entry)
    return {"values": out}


def _request(request: Any) -> dict[str, Any]:
    if not isinstance(request, Mapping):
        return {}
    kept: dict[str, Any] = {}
    if isinstance(request.get("method"), str):
        kept["method"] = request["method"]
    url = _url(request.get("url"))
    if url:
        kept["url"] = url
    headers = request.get("headers")
    if isinstance(headers, Mapping):
        kept["headers"] = {
            k: scrub_text(str(v)) for k, v in headers.items() if str(k).lower() in ALLOWED_HEADERS
        }
    return kept


def _contexts(contexts: Any) -> dict[str, Any]:
    if not isinstance(contexts, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for name, value in contexts.items():
        if name in SDK_CONTEXTS and isinstance(value, Mapping):
            kept[name] = dict(value)
        elif name == "trace" and isinstance(value, Mapping):
            kept[name] = {
                k: value[k]
                for k in ("trace_id", "span_id", "parent_span_id", "op", "status")
                if k in value
            }
        else:
            inner = _allowed(value)
            if inner:
                kept[name] = inner
    return kept


def scrub_breadcrumb(crumb: Any, _hint: Any = None) -> dict[str, Any] | None:
    """A breadcrumb with its text scrubbed and only allow-listed data."""
    if not isinstance(crumb, Mapping):
        return None
    kept = {k: crumb[k] for k in ("type", "category", "level", "timestamp") if k in crumb}
    if crumb.get("message"):
        kept["message"] = scrub_text(str(crumb["message"]))
    data = crumb.get("data")
    if isinstance(data, Mapping):
        cleaned = _allowed(data) or {}
        url = _url(data.get("url"))
        if url:
            cleaned["url"] = url
        if cleaned:
            kept["data"] = cleaned
    return kept


def scrub_event(event: Any, _hint: Any = None) -> dict[str, Any]:
    """``before_send``: the event with nothing that could be claim data left in it."""
    out: dict[str, Any] = {k: v for k, v in event.items() if k in EVENT_FIELDS}
    out.pop("user", None)
    if "exception" in out:
        out["exception"] = _exception(out["exception"])
    if "threads" in out:
        out["threads"] = {
            "values": [
                {
                    k: v
                    for k, v in {
                        "id": t.get("id"),
                        "crashed": t.get("crashed"),
                        "current": t.get("current"),
                        "stacktrace": _frames(t.get("stacktrace")),
                    }.items()
                    if v is not None
                }
                for t in (out["threads"] or {}).get("values") or []
                if isinstance(t, Mapping)
            ]
        }
    if "stacktrace" in out:
        out["stacktrace"] = _frames(out["stacktrace"])
    if isinstance(out.get("message"), str):
        out["message"] = scrub_text(out["message"])
    if isinstance(out.get("logentry"), Mapping):
        entry = out["logentry"]
        out["logentry"] = {
            k: scrub_text(str(entry[k])) for k in ("message", "formatted") if entry.get(k)
        }
    if "request" in out:
        out["request"] = _request(out["request"])
    if "contexts" in out:
        out["contexts"] = _contexts(out["contexts"])
    out["extra"] = _allowed(out.get("extra")) or {}
    if isinstance(out.get("tags"), Mapping):
        out["tags"] = {str(k): _scrub_value(v) for k, v in out["tags"].items()}
    if isinstance(out.get("transaction"), str):
        out["transaction"] = scrub_text(out["transaction"])
    if isinstance(out.get("breadcrumbs"), Mapping):
        crumbs = [scrub_breadcrumb(c) for c in out["breadcrumbs"].get("values") or []]
        out["breadcrumbs"] = {"values": [c for c in crumbs if c]}
    if isinstance(out.get("spans"), list):
        out["spans"] = [_span(s) for s in out["spans"] if isinstance(s, Mapping)]
    return out


def _span(span: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("trace_id", "span_id", "parent_span_id", "op", "status")
    kept = {k: span[k] for k in (*keys, "start_timestamp", "timestamp") if k in span}
    if span.get("description"):
        kept["description"] = scrub_text(str(span["description"]))
    return kept


def report_exception(exc: BaseException) -> None:
    """Send an exception that our code caught (and answered) to Sentry, when it is on."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(exc)


def release() -> str:
    """``claims-ocr@VERSION`` (``+REVISION`` when the deployment says which)."""
    from services.metrics import package_version, revision

    rev = revision()
    return f"claims-ocr@{package_version()}" + (f"+{rev}" if rev != "unknown" else "")


def init_sentry(settings: Settings, component: str) -> bool:
    """Report this process's errors to ``SENTRY_DSN``; False (nothing done) when unset."""
    dsn = settings.sentry_dsn.get_secret_value().strip()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=release(),
        environment=settings.sentry_environment or settings.env,
        # send_default_pii is left at its default, off (recent sentry-sdk versions warn
        # when it is passed at all): no user, cookies, headers or IPs are collected.
        include_local_variables=False,
        include_source_context=False,
        max_request_body_size="never",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=scrub_event,  # type: ignore[arg-type]
        before_send_transaction=scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=scrub_breadcrumb,
        auto_enabling_integrations=False,
        integrations=[
            CeleryIntegration(),
            StarletteIntegration(transaction_style="url"),
            FastApiIntegration(transaction_style="url"),
        ],
    )
    sentry_sdk.set_tag("component", component)
    log.info(
        "sentry reporting on",
        component=component,
        environment=settings.sentry_environment or settings.env,
    )
    return True
