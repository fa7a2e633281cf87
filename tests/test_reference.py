"""The reference post's figures: stored once, read-only, analysable like any sweep."""

import sqlite3

import pytest

from db.store import Store
from studio.sweeps.reference import BATCHED, SIMPLE, ensure_reference_sweeps, is_reference


def test_reference_sweeps_hold_the_published_figures(db_path):
    store = Store(db_path)
    ids = ensure_reference_sweeps(store)
    batched = store.get_sweep(ids["batched"])
    assert batched["external"] == 1 and is_reference(batched)
    assert batched["batch_size"] == 16 and batched["num_prompts"] == 100 and batched["model"].endswith("Llama-2-7b-hf")
    assert [(r["num_gpus"], r["tokens_per_second"], r["seconds"]) for r in batched["runs"]] == \
        [(n, float(t), s) for n, t, s in BATCHED]
    simple = store.get_sweep(ids["simple"])
    assert simple["mode"] == "simple" and [r["seconds"] for r in simple["runs"]] == [s for _, _, s in SIMPLE]


def test_loading_twice_adds_nothing(db_path):
    store = Store(db_path)
    first = ensure_reference_sweeps(store)
    assert ensure_reference_sweeps(store) == first
    assert len(store.list_sweeps()) == 2
    assert len(store.list_runs()) == 10


def test_reference_sweeps_cannot_be_deleted_or_edited(db_path):
    store = Store(db_path)
    ids = ensure_reference_sweeps(store)
    run_id = store.get_sweep(ids["batched"])["runs"][0]["id"]
    with pytest.raises(ValueError, match="read-only"):
        store.delete_sweep(ids["batched"])
    with pytest.raises(ValueError, match="read-only"):
        store.delete_runs([run_id])
    # the database refuses too, whatever code path tries
    with pytest.raises(sqlite3.IntegrityError, match="read-only"):
        store.conn.execute("UPDATE runs SET tokens_per_second = 1 WHERE id = ?", (run_id,))
    with pytest.raises(sqlite3.IntegrityError, match="read-only"):
        store.conn.execute("UPDATE sweeps SET name = 'x' WHERE id = ?", (ids["simple"],))
    with pytest.raises(sqlite3.IntegrityError, match="read-only"):
        store.conn.execute("DELETE FROM sweeps WHERE id = ?", (ids["simple"],))
    assert store.get_run(run_id)["tokens_per_second"] == 520.0
    assert len(store.list_sweeps()) == 2


def test_normal_sweeps_stay_deletable(db_path):
    store = Store(db_path)
    ensure_reference_sweeps(store)
    sweep_id = store.create_sweep({"model": "tiny", "mode": "batched"}, [1], 1)
    store.create_run({"model": "tiny", "mode": "batched", "batch_size": 2, "max_new_tokens": 4, "num_gpus": 1,
                      "prompts": ["a"]}, sweep_id=sweep_id, status="succeeded")
    assert store.delete_sweep(sweep_id) == 1


def test_cli_reference_load_and_list(db_path, cli):
    done = cli("reference", "load", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert "ref:batched: sweep" in done.stdout and "loaded" in done.stdout
    again = cli("reference", "load", "--db", str(db_path))
    assert "already stored" in again.stdout
    listed = cli("reference", "list", "--db", str(db_path))
    assert "ref:simple: sweep" in listed.stdout
