"""Alembic migrations of the ledger schema (run through ``services.ledger.migrate``)."""
