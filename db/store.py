"""The studio's SQLite history, the only place SQL is written. `Store` is one class
made of its parts, each a job: the connection and transactions (db.connection),
sweeps (db.sweeps), writing runs and launches (db.run_writes), reading runs as
RunRows (db.run_reads), and moving runs between studios (db.exchange)."""

from __future__ import annotations

from db.exchange import Exchange
from db.run_reads import RunReads
from db.run_writes import RunWrites
from db.sweeps import SweepStore


class Store(SweepStore, RunWrites, RunReads, Exchange):
    """A studio database, migrated when opened (db.migrate)."""
