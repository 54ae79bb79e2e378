"""Keys for the admin API, kept in the ledger so every API process sees the same ones.

A key is ``coa_<id>_<secret>``: the id is public (it names the row, shows in lists), the
secret is shown once at creation and only its sha256 is stored, so a copy of the
database does not hand out access. Verification compares hashes in constant time and
refuses revoked keys. ``last_used_at`` is written at most once a minute per key, so a
busy client does not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from services.ledger.errors import LedgerError
from services.ledger.models import ApiKey, utcnow

if TYPE_CHECKING:
    from services.ledger.ledger import Ledger

PREFIX = "coa"
#: How stale ``last_used_at`` may get before a verification writes it again.
TOUCH_EVERY = timedelta(minutes=1)


class Role(StrEnum):
    """What a key may do; each role can do everything the ones before it can."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class ApiKeyExists(LedgerError):
    """A key with this name exists already (revoked ones too: names are never reused)."""


class ApiKeyNotFound(LedgerError, LookupError):
    """No key with this name."""


@dataclass(frozen=True)
class ApiKeyView:
    """A key without its secret: what lists and verification hand back."""

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyView:
        return cls(
            row.id, row.name, Role(row.role), row.created_at, row.last_used_at, row.revoked_at
        )


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is the only time the secret exists outside its holder."""

    key: str = field(repr=False)
    view: ApiKeyView


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret or len(key_id) > 32 or len(key) > 256:
        return None
    return key_id, secret


class ApiKeys:
    """The admin API's keys (``ledger.apikeys``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def create(self, name: str, role: Role | str) -> CreatedKey:
        """A new key for ``name``; its full form is returned here and never again."""
        role = Role(role)
        name = name.strip()
        if not name or len(name) > 64:
            raise ValueError("a key's name must be 1 to 64 characters")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id, name=name, role=role.value, secret_hash=_hash(secret), created_at=utcnow()
        )
        try:
            with self._ledger._write() as session:
                if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
                    raise ApiKeyExists(f"an API key named {name!r} exists already")
                session.add(row)
                session.flush()
                view = ApiKeyView.of(row)
        except IntegrityError:
            raise ApiKeyExists(f"an API key named {name!r} exists already") from None
        return CreatedKey(f"{PREFIX}_{key_id}_{secret}", view)

    def list(self) -> list[ApiKeyView]:
        """Every key, revoked ones included, oldest first; no secrets."""
        with self._ledger._read() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()
            return [ApiKeyView.of(r) for r in rows]

    def revoke(self, name: str) -> ApiKeyView:
        """Refuse the key from now on (idempotent: revoking twice keeps the first time)."""
        with self._ledger._write() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise ApiKeyNotFound(f"no API key named {name!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            session.flush()
            return ApiKeyView.of(row)

    def verify(self, key: str) -> ApiKeyView | None:
        """The key's holder when ``key`` is a live key, else None (never says why)."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._ledger._read() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                return None
            view, stored = ApiKeyView.of(row), row.secret_hash
        if not hmac.compare_digest(stored, _hash(secret)) or not view.active:
            return None
        now = utcnow()
        if view.last_used_at is None or now - view.last_used_at >= TOUCH_EVERY:
            with self._ledger._write() as session:
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .where(
                        or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_EVERY)
                    )
                    .values(last_used_at=now)
                    .execution_options(synchronize_session=False)
                )
        return view
