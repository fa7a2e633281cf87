import hashlib
import sqlite3

import pytest

from db import views
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


# The texts of the shipped migrations, pinned: a database made by an older version must
# replay them exactly. A new migration is added to this list once it ships.
SHIPPED = {
    "001_initial": "2826062c465c4df801118c8a7a3bfc29e22232006574299a7bbf4ac0e4b6d8e8",
    "002_views": "4776edde5436c2ea73cf2de2d741cface38163f705b8622e2c9bf9f821a344c4",
    "003_roofline": "5872aa1fd60ce502813cace71c39e4a9f11e18aed1105d0ae0556389904f19ed",
    "004_analysis_reference_readonly": "a61370d7ee86ac58eef4bf326e0ef1fba7dc1f603d55d7e164fae8a7514a3a63",
    "005_sweep_origin_and_owner": "ed8dd3d0c2f4f12a2f515291cd178ad7faa36073c441769d723ee71efa295dcf",
    "006_sweep_summary_by_world_size": "0ec48ce87843850273c4a985d7e18d93a6288def00fb4e929851704509b5ce60",
    "008_latency_and_prompt_tokens": "773685fb10e71d88a8e099f43c943d37a94ffab11d8dc7797144da72d15f5e62",
    "009_memory_and_energy": "b5c06c0674bc647aefbfc07d623d470444d2cf6bb28b77909a7667db63cb3a4a",
    "010_layouts_and_agreement": "d8dd71e793911ff8430dfe1f92dd7347cecccab771338315c94fe8d52d07812a",
    "011_shared_launches": "9142c139381558df1ef1969c0c7b7f4128eb8265d1e9a6f9bca0f82db734a932",
    "012_sweep_summary_by_layout": "fbaa6fab589e92f200ae58812b938d38a069f6de028e0050d90a6f6dc9d806dd",
    "013_roofline_bytes": "4c87738e02699471ac37a24116778b547454004295abbb37aa5dc82441913204",
}


def schema(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                        "ORDER BY type, name").fetchall()


def made_by_an_older_version(path, until: str) -> sqlite3.Connection:
    """A database as a version that shipped the migrations before `until` left it, rows and all."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in sorted(MIGRATIONS):
        if name >= until:
            break
        if callable(sql):
            sql(conn)
        else:
            conn.executescript(sql)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    return conn


def test_the_shipped_migrations_are_as_they_shipped():
    texts = {name: sql for name, sql in MIGRATIONS if isinstance(sql, str)}
    assert {name: hashlib.sha256(texts[name].encode()).hexdigest() for name in SHIPPED} == SHIPPED


@pytest.mark.parametrize("until", sorted(name for name, _ in MIGRATIONS) + ["999"])
def test_a_database_left_at_any_shipped_step_migrates_to_the_schema_of_a_fresh_one(tmp_path, until):
    fresh = sqlite3.connect(tmp_path / "fresh.db", isolation_level=None)
    migrate(fresh)
    old = made_by_an_older_version(tmp_path / "old.db", until)
    migrate(old)
    assert schema(old) == schema(fresh)
    assert {r[1]: r[3] for r in schema(fresh) if r[0] == "view"} == {
        name: views.create_statement(name) for name in views.VIEWS}


def test_a_changed_view_reaches_the_database_at_its_next_open_without_a_migration(db_path, monkeypatch):
    Store(db_path).close()
    changed = views.RUN_SUMMARY.replace("r.error\n", "r.error,\n    r.tp_size\n")
    monkeypatch.setitem(views.VIEWS, "run_summary", changed)
    store = Store(db_path)
    assert "tp_size" in {r[1] for r in store.conn.execute("PRAGMA table_info(run_summary)")}
    assert store.conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_an_unchanged_view_is_left_alone(db_path):
    Store(db_path).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert migrate(conn) == []
    assert not [s for s in statements if not s.lstrip().upper().startswith(("SELECT", "CREATE TABLE IF NOT EXISTS"))]


def test_a_view_that_cannot_be_made_leaves_the_views_as_they_were(db_path, monkeypatch):
    before = schema(Store(db_path).conn)
    monkeypatch.setitem(views.VIEWS, "sweep_summary", "SELEKT 1")
    with pytest.raises(sqlite3.OperationalError):
        Store(db_path)
    monkeypatch.undo()
    assert schema(sqlite3.connect(db_path)) == before
