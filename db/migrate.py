"""Applies the named migrations of `db.migrations` that a database lacks, in the
order of their names, each once, each in one transaction; then makes the read-only
views as `db.views` defines them now, where they differ."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from db.migrations import MIGRATIONS, REBUILDS
from db.views import refresh_views


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def applied(conn: sqlite3.Connection) -> list[str]:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply what is missing and bring the views up to date; return the names applied now."""
    done = set(applied(conn))
    now_applied = []
    for name, sql in sorted(MIGRATIONS, key=lambda m: m[0]):
        if name in done:
            continue
        keys_were_on = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        if name in REBUILDS:
            conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set before BEGIN
        # executescript would commit on its own; run statement by statement inside one transaction
        conn.execute("BEGIN IMMEDIATE")
        try:
            if name not in {r[0] for r in conn.execute("SELECT name FROM _migrations")}:
                if callable(sql):
                    sql(conn)
                else:
                    for statement in _statements(sql):
                        conn.execute(statement)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(f"migration {name} would break foreign keys: {broken[:3]}")
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, _now()))
                now_applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            if name in REBUILDS and keys_were_on:
                conn.execute("PRAGMA foreign_keys = ON")
    refresh_views(conn)
    return now_applied


def _statements(sql: str) -> list[str]:
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        candidate = "\n".join(current)
        if sqlite3.complete_statement(candidate):
            if candidate.strip().strip(";").strip():
                out.append(candidate)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        out.append(tail)
    return out
