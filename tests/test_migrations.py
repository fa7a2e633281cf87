import sqlite3

from db.migrations import MIGRATIONS, applied, migrate
from db.store import Store


def test_migrations_apply_to_an_empty_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "empty.db", isolation_level=None)
    names = migrate(conn)
    assert names == [name for name, _ in MIGRATIONS]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "outputs", "ranks", "sweeps", "_migrations"} <= tables


def test_migrations_are_safe_to_run_twice(tmp_path):
    conn = sqlite3.connect(tmp_path / "twice.db", isolation_level=None)
    migrate(conn)
    assert migrate(conn) == []
    assert applied(conn) == [name for name, _ in MIGRATIONS]


def test_migration_names_are_unique():
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))


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
