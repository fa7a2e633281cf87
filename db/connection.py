"""The store's connection: one SQLite file in WAL mode (readers never wait for a
writer), foreign keys on, migrated when opened, and the transaction every write
runs in, so a crash mid-write leaves either all of a change or none of it. Rows
go in through sqlite-utils (dicts in, lists and dicts stored as JSON) and come
out with their JSON columns decoded; rows of the runs table come out as RunRows.
Nothing here computes a figure: what is stored was worked out before.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlite_utils

from db.migrate import migrate
from db.rows import RunRow
from runner.paths import default_db_path

JSON_COLUMNS = ("config", "environment", "phases", "plan", "pids", "gpu_counts", "settings", "timeline", "owner",
                "roofline", "agreement_detail", "token_ids", "itl_ms")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _decode(row: dict) -> dict:
    for key in JSON_COLUMNS:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _stored(value: Any) -> Any:
    """A value as a column holds it: dicts and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


class StoreBase:
    """What every part of the Store shares: the connection, its lock and transactions, and reading rows."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_db_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(conn)
        if str(self.path) != ":memory:":
            self.db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
        self._lock = threading.RLock()
        with self._lock:
            migrate(conn)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        with self._lock:
            return [_decode(row) for row in self.db.query(sql, tuple(params))]

    def _runs(self, sql: str, params: Iterable = ()) -> list[RunRow]:
        """Rows of the runs table, each read into a RunRow: its layout worked out once, here."""
        return [RunRow(row) for row in self._rows(sql, params)]

    def integrity(self) -> str:
        with self._lock:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
