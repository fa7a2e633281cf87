"""Named schema migrations, applied in order, each once, each in a transaction.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

MIGRATIONS: list[tuple[str, str]] = []


def migration(name: str, sql: str) -> None:
    MIGRATIONS.append((name, sql))


migration(
    "001_initial",
    """
    CREATE TABLE IF NOT EXISTS sweeps (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        name TEXT,
        status TEXT NOT NULL,
        model TEXT,
        mode TEXT,
        batch_size INTEGER,
        max_new_tokens INTEGER,
        num_prompts INTEGER,
        gpu_counts TEXT,
        repeats INTEGER,
        settings TEXT,
        external INTEGER NOT NULL DEFAULT 0,
        source TEXT
    );
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY,
        sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
        repeat_index INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        status TEXT NOT NULL,
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        max_new_tokens INTEGER NOT NULL,
        num_gpus INTEGER NOT NULL,
        num_nodes INTEGER NOT NULL DEFAULT 1,
        world_size INTEGER,
        device TEXT,
        dtype TEXT,
        num_prompts INTEGER NOT NULL,
        tokens INTEGER,
        raw_tokens INTEGER,
        padding_tokens INTEGER,
        seconds REAL,
        tokens_per_second REAL,
        imbalance REAL,
        config TEXT NOT NULL,
        environment TEXT,
        phases TEXT,
        plan TEXT,
        error TEXT,
        stderr_tail TEXT,
        exit_code INTEGER,
        partial INTEGER NOT NULL DEFAULT 0,
        pids TEXT,
        label TEXT
    );
    CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id);
    CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
    CREATE TABLE IF NOT EXISTS outputs (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        prompt_index INTEGER NOT NULL,
        rank INTEGER NOT NULL,
        prompt TEXT NOT NULL,
        output TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        raw_tokens INTEGER
    );
    CREATE INDEX IF NOT EXISTS outputs_run ON outputs(run_id, prompt_index);
    CREATE TABLE IF NOT EXISTS ranks (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        node INTEGER NOT NULL DEFAULT 0,
        hostname TEXT,
        num_prompts INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        raw_tokens INTEGER,
        seconds REAL NOT NULL,
        peak_memory_bytes INTEGER,
        timeline TEXT
    );
    CREATE INDEX IF NOT EXISTS ranks_run ON ranks(run_id, rank);
    """,
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def applied(conn: sqlite3.Connection) -> list[str]:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply what is missing; return the names applied now."""
    done = set(applied(conn))
    now_applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # executescript would commit on its own; run statement by statement inside one transaction
        conn.execute("BEGIN IMMEDIATE")
        try:
            if name not in {r[0] for r in conn.execute("SELECT name FROM _migrations")}:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, _now()))
                now_applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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
