"""`studio export` and `studio import`: runs move between databases whole, a bad
file is refused with every problem named and changes nothing, stored runs are
never overwritten, and importing the same file twice adds nothing."""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_views import add_run

from db.store import Store
from studio.exchange.runs_file import ExportFileError, build_export, import_file


def counts(db) -> tuple[int, int, int, int]:
    conn = sqlite3.connect(db)
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("sweeps", "runs", "outputs", "ranks"))
    finally:
        conn.close()


@pytest.fixture
def source(tmp_path) -> Store:
    store = Store(tmp_path / "source.db")
    sweep = store.create_sweep({"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8,
                                "num_prompts": 4}, [1, 2], 1, name="cluster job")
    add_run(store, sweep, 1, 20.0, num_nodes=2)
    add_run(store, sweep, 2, None)  # a failed run travels too, with its error
    store.finish_sweep(sweep, "failed")
    return store


def test_export_then_import_adds_the_runs_under_new_ids_and_keeps_existing_ones(tmp_path, source, cli):
    export = tmp_path / "export.json"
    result = cli("export", "--db", str(source.path), "--out", str(export))
    assert result.returncode == 0, result.stderr
    target = tmp_path / "target.db"
    existing = Store(target)
    mine = add_run(existing, existing.create_sweep({"model": "tiny"}, [1], 1, name="mine"), 1, 99.0)
    before = existing.get_run(mine)
    existing.close()

    result = cli("import", str(export), "--db", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported 2 run(s) as runs 2-3"
    store = Store(target)
    assert store.get_run(mine) == before  # untouched
    copied, original = store.get_run(2), source.get_run(1)
    for key in ("status", "num_nodes", "num_gpus", "world_size", "tokens", "seconds", "tokens_per_second", "config",
                "created_at"):
        assert copied[key] == original[key], key
    assert [(r["rank"], r["node"], r["hostname"]) for r in copied["ranks"]] == [(0, 0, "host0"), (1, 1, "host1")]
    assert [o["prompt"] for o in copied["outputs"]] == [o["prompt"] for o in original["outputs"]]
    failed = store.get_run(3)
    assert failed["status"] == "failed" and "out of memory" in failed["error"]
    sweep = store.get_sweep(copied["sweep_id"])
    assert sweep["name"] == "cluster job" and sorted(r["id"] for r in sweep["runs"]) == [2, 3]
    store.close()

    again = cli("import", str(export), "--db", str(target))
    assert again.returncode == 0
    assert "imported 0 run(s); skipped 2 already in the database" in again.stdout
    assert counts(target) == (2, 3, 4 + 4, 1 + 2)


def test_a_bad_file_is_refused_whole_with_each_problem_named(tmp_path, source, cli):
    data = build_export(source)
    data["runs"][0]["tokens"] += 1  # no longer the sum of its ranks
    del data["runs"][0]["ranks"][1]["seconds"]
    data["runs"][1]["status"] = "running"  # a run still going cannot be imported
    data["runs"][1]["sweep_id"] = 77
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    target = tmp_path / "target.db"
    Store(target).close()
    before = counts(target)

    result = cli("import", str(bad), "--db", str(target))
    assert result.returncode == 2
    assert "nothing imported" in result.stderr
    assert "runs[0].ranks[1].seconds: is missing" in result.stderr
    assert "runs[0].tokens: 33 is not the sum of its ranks' tokens (32)" in result.stderr
    assert "runs[1].status: 'running' is not a valid value" in result.stderr
    assert "runs[1].sweep_id: sweep 77 is not in the file's sweeps" in result.stderr
    assert counts(target) == before


@pytest.mark.parametrize("text, message", [
    ("not json", "is not valid JSON"),
    ('{"format": "something else"}', "is not a Scaling Studio export"),
    ('{"format": "scaling-studio-runs", "version": 9, "sweeps": [], "runs": []}', "export version 9"),
])
def test_files_that_are_not_exports(tmp_path, text, message):
    path = tmp_path / "file.json"
    path.write_text(text)
    with pytest.raises(ExportFileError, match=message):
        import_file(path, Store(tmp_path / "t.db"))


def test_import_is_one_transaction(tmp_path, source):
    """A row the database refuses half-way (validation bypassed) leaves nothing behind."""
    sweeps, runs = source.export_rows()
    runs[1]["outputs"] = [{"prompt_index": 0, "rank": 0, "prompt": "p", "tokens": 1, "output": None}]  # NOT NULL
    target = Store(tmp_path / "target.db")
    with pytest.raises(sqlite3.IntegrityError):
        target.import_rows(sweeps, runs)
    assert counts(tmp_path / "target.db") == (0, 0, 0, 0)


def test_export_of_one_run_carries_only_its_sweep(tmp_path, source):
    data = build_export(source, run_ids=[1])
    assert [r["id"] for r in data["runs"]] == [1] and [s["id"] for s in data["sweeps"]] == [1]
    assert data["format"] == "scaling-studio-runs" and data["version"] == 1
