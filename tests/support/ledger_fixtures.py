"""Pytest fixtures for code that uses the ledger (loaded by ``tests/conftest.py``).

Every test that takes ``ledger`` runs on SQLite and on PostgreSQL.
PostgreSQL gets one throwaway database per test session (dropped afterwards) and one
schema per ledger inside it, so tests never see each other's rows; those tests are
skipped only when the server does not answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from services.ledger import Ledger

PG_HOST = os.environ.get("LEDGER_TEST_PG_HOST", "127.0.0.1:5432")
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}/postgres"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Name of a fresh PostgreSQL database for this session."""
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}: {exc}")
    name = f"claims_ocr_ledger_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _empty_database(backend: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """URL of an empty database on ``backend`` (a PostgreSQL schema), removed after use."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'ledger.db'}"
        return
    database = request.getfixturevalue("postgres_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"postgresql://postgres@{PG_HOST}/{database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield f"postgresql+psycopg://postgres@{PG_HOST}/{database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _migrated(url: str) -> Iterator[Ledger]:
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger
    ledger.close()


@pytest.fixture(params=BACKENDS)
def empty_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database with no schema yet, per test."""
    yield from _empty_database(request.param, request, tmp_path)


@pytest.fixture
def ledger(empty_ledger_url: str) -> Iterator[Ledger]:
    """A fresh, empty, migrated ledger per test."""
    yield from _migrated(empty_ledger_url)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_ledger(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    """One migrated ledger per module, for tests that only look at their own jobs."""
    folder = tmp_path_factory.mktemp("ledger")
    for url in _empty_database(request.param, request, folder):
        yield from _migrated(url)
