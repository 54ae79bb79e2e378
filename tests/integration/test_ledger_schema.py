"""The schema comes from the packaged Alembic migrations and matches the models."""

from __future__ import annotations

import multiprocessing

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from services.ledger import Ledger
from services.ledger.migrate import alembic_config, current_revision, downgrade
from services.ledger.models import Base
from tests.support.ledger_helpers import drive, new_job

pytestmark = pytest.mark.both_databases  # the ledger's SQL: SQLite and PostgreSQL

TABLES = {"emails", "jobs", "job_events", "alembic_version"}


def test_migrate_creates_the_schema_at_head(ledger: Ledger) -> None:
    assert set(inspect(ledger.engine).get_table_names()) >= TABLES
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current_revision(ledger.engine) == head
    unique = {
        tuple(u["column_names"]) for u in inspect(ledger.engine).get_unique_constraints("jobs")
    }
    assert ("email_id", "part_index") in unique


def test_models_match_migrations(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migrate_again_is_a_no_op_that_keeps_data(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    ledger.migrate()
    assert ledger.get_job(job_id).id == job_id


def test_downgrade_to_base_and_upgrade_again(ledger: Ledger) -> None:
    downgrade(ledger.engine, "base")
    assert not {"emails", "jobs", "job_events"} & set(inspect(ledger.engine).get_table_names())
    ledger.migrate()
    assert set(inspect(ledger.engine).get_table_names()) >= TABLES
    new_job(ledger)  # usable again, triggers included


def _migrate_in_a_worker(url: str) -> str | None:
    with Ledger(url) as ledger:
        ledger.migrate()
        return current_revision(ledger.engine)


def test_workers_migrating_at_once_all_succeed(empty_ledger_url: str) -> None:
    """Worker processes all call migrate() at start; only one may create the schema."""
    with multiprocessing.get_context("fork").Pool(3) as pool:
        revisions = pool.map(_migrate_in_a_worker, [empty_ledger_url] * 3)  # re-raises
    assert revisions == [ScriptDirectory.from_config(alembic_config()).get_current_head()] * 3
    with Ledger(empty_ledger_url) as ledger:
        assert new_job(ledger)


@pytest.mark.parametrize(
    "statement", ["UPDATE job_events SET actor = 'someone else'", "DELETE FROM job_events"]
)
def test_events_cannot_be_changed_or_deleted(ledger: Ledger, statement: str) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "ready")
    trail = ledger.get_job(job_id).events
    with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(text(statement))
    assert ledger.get_job(job_id).events == trail


def test_sqlite_is_set_up_for_concurrent_writers(tmp_path: object) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/sub/dir/ledger.db")  # parent folders are created
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    ledger.close()


@pytest.mark.parametrize("start", ["0001", "0002"])
def test_upgrading_gives_existing_jobs_their_received_at(ledger: Ledger, start: str) -> None:
    """Downgrades keep the data (jobs and their trails), and 0003 fills ``received_at``."""
    dated, undated = new_job(ledger), new_job(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE emails SET received_at = NULL WHERE id = "
                "(SELECT email_id FROM jobs WHERE id = :job)"
            ),
            {"job": undated},
        )
    expected = {}
    with ledger.engine.connect() as conn:
        for job in (dated, undated):
            expected[job] = conn.execute(
                text(
                    "SELECT COALESCE(e.received_at, e.created_at) FROM jobs j "
                    "JOIN emails e ON e.id = j.email_id WHERE j.id = :job"
                ),
                {"job": job},
            ).scalar_one()
    downgrade(ledger.engine, start)  # jobs as they were, without received_at
    ledger.migrate()
    with ledger.engine.connect() as conn:
        for job, received in expected.items():
            got = conn.execute(
                text("SELECT received_at FROM jobs WHERE id = :job"), {"job": job}
            ).scalar_one()
            assert got == received and got is not None
