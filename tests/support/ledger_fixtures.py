"""Pytest fixtures for code that uses the ledger (loaded by ``tests/conftest.py``).

The rule: a test runs on SQLite only, unless its subject is SQL behaviour.

* ``ledger``, ``shared_ledger`` and ``empty_ledger_url`` give a SQLite database by
  default. Tests that merely *use* the ledger (pipeline steps, review actions, bad
  attachments, ...) stay on SQLite: a second backend would only double their run time.
* A test whose subject is the SQL itself -- the ledger's own suite
  (``tests/integration/test_ledger_*.py``), concurrency races, constraints and
  triggers, migrations -- is marked ``@pytest.mark.both_databases`` (or its module sets
  ``pytestmark = pytest.mark.both_databases``). Its ledger fixtures are then
  parametrised over ``[sqlite]`` and ``[postgresql]``; the PostgreSQL cases also carry
  the ``postgres`` marker, so ``-m "not postgres"`` leaves them out.
* ``ledger_backend`` says which backend the current test runs on.

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
BOTH_DATABASES = "both_databases"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{BOTH_DATABASES}: run this test's ledger fixtures on SQLite and on PostgreSQL "
        "(for tests whose subject is SQL behaviour; everything else is SQLite-only)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``ledger_backend`` over both databases for marked tests only."""
    if "ledger_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        BOTH_DATABASES
    ):
        metafunc.parametrize("ledger_backend", BACKENDS, indirect=True)


@pytest.fixture(scope="module")
def ledger_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite``, or the backend a ``both_databases`` test is parametrised with."""
    return getattr(request, "param", "sqlite")


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


@pytest.fixture
def empty_ledger_url(
    ledger_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """URL of a database with no schema yet, per test."""
    yield from _empty_database(ledger_backend, request, tmp_path)


@pytest.fixture
def ledger(empty_ledger_url: str) -> Iterator[Ledger]:
    """A fresh, empty, migrated ledger per test."""
    yield from _migrated(empty_ledger_url)


@pytest.fixture(scope="module")
def shared_ledger(
    ledger_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    """One migrated ledger per module, for tests that only look at their own jobs."""
    folder = tmp_path_factory.mktemp("ledger")
    for url in _empty_database(ledger_backend, request, folder):
        yield from _migrated(url)
