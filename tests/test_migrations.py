import sqlite3

from db.migrate import applied, migrate
from db.migrations import MIGRATIONS
from db.store import Store


def test_migrations_apply_to_an_empty_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "empty.db", isolation_level=None)
    names = migrate(conn)
    assert names == sorted(name for name, _ in MIGRATIONS)  # in the order of their names
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "outputs", "ranks", "sweeps", "_migrations"} <= tables


def test_migrations_are_safe_to_run_twice(tmp_path):
    conn = sqlite3.connect(tmp_path / "twice.db", isolation_level=None)
    migrate(conn)
    assert migrate(conn) == []
    assert applied(conn) == sorted(name for name, _ in MIGRATIONS)


def test_migration_names_are_unique_and_numbered():
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    numbers = [int(name.split("_", 1)[0]) for name in names]
    assert sorted(numbers) == list(range(1, len(names) + 1)), "migrations are numbered 001, 002, ... without gaps"


def test_a_database_made_before_the_view_change_gets_the_new_view(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    old = [m for m in sorted(MIGRATIONS) if m[0] < "006"]
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in old:
        conn.executescript(sql)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    assert "gpus_per_node" in {r[1] for r in conn.execute("PRAGMA table_info(sweep_summary)")}
    assert migrate(conn) == [name for name, _ in sorted(MIGRATIONS) if name >= "006"]
    columns = {r[1] for r in conn.execute("PRAGMA table_info(sweep_summary)")}
    assert {"total_gpus", "layouts", "median_seconds"} <= columns and "gpus_per_node" not in columns


def test_required_columns(tmp_path):
    store = Store(tmp_path / "s.db")
    columns = {t: {c.name for c in store.db[t].columns} for t in ("runs", "outputs", "ranks")}
    assert {"id", "created_at", "status", "model", "mode", "batch_size", "max_new_tokens", "num_gpus", "device",
            "num_prompts", "tokens", "raw_tokens", "seconds", "tokens_per_second", "config", "environment",
            "error", "sweep_id"} <= columns["runs"]
    assert {"run_id", "prompt_index", "rank", "prompt", "output", "tokens"} <= columns["outputs"]
    assert {"run_id", "rank", "num_prompts", "tokens", "seconds", "peak_memory_bytes"} <= columns["ranks"]


def test_wal_and_foreign_keys(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
