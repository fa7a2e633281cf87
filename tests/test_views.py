"""The schema's views (migrations 002_views, 006_sweep_summary_by_world_size), and the
database as Datasette opens it."""

from __future__ import annotations

import asyncio
import re

import pytest
from conftest import ROOT

from db.store import Store
from runner.result import RunResult


def config(num_gpus: int, num_nodes: int = 1) -> dict:
    return {"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8, "num_gpus": num_gpus,
            "num_nodes": num_nodes, "prompts": ["a", "b", "c", "d"]}


def add_run(store: Store, sweep_id: int, num_gpus: int, tokens_per_second: float | None, num_nodes: int = 1) -> int:
    cfg = config(num_gpus, num_nodes)
    run_id = store.create_run(cfg, sweep_id=sweep_id)
    if tokens_per_second is None:
        store.finish_run(run_id, RunResult.failure(cfg, "failed", "rank 1: out of memory"))
        return run_id
    world = num_gpus * num_nodes
    ranks = [{"rank": r, "node": r // num_gpus, "hostname": f"host{r // num_gpus}", "num_prompts": 4 // world,
              "tokens": 32 // world, "seconds": 1.0, "peak_memory_bytes": 1000 + r} for r in range(world)]
    outputs = [{"prompt_index": i, "rank": i % world, "prompt": p, "output": "x", "tokens": 8}
               for i, p in enumerate(cfg["prompts"])]
    store.finish_run(run_id, RunResult(status="succeeded", config=cfg, world_size=world, tokens=32, raw_tokens=40,
                                       seconds=32 / tokens_per_second, tokens_per_second=tokens_per_second,
                                       ranks=ranks, outputs=outputs))
    return run_id


@pytest.fixture
def store(db_path) -> Store:
    store = Store(db_path)
    sweep = store.create_sweep({"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8,
                                "num_prompts": 4}, [1, 2], 3, name="scaling")
    for gpus, tps in [(1, 10.0), (1, 30.0), (1, 20.0), (2, 40.0), (2, 50.0), (2, None)]:
        add_run(store, sweep, gpus, tps)
    add_run(store, sweep, 1, 70.0, num_nodes=2)  # 2 nodes x 1 GPU: the same world size as 1 x 2
    return store


def test_sweep_summary_gives_median_speedup_and_efficiency_per_world_size(store):
    rows = {r["total_gpus"]: r for r in store._rows("SELECT * FROM sweep_summary ORDER BY total_gpus")}
    assert set(rows) == {1, 2}
    one, two = rows[1], rows[2]
    assert (one["runs"], one["succeeded"], one["not_succeeded"]) == (3, 3, 0)
    assert one["median_tokens_per_second"] == 20.0  # odd count: the middle one
    assert one["layouts"] == "1x1"
    # 1 node x 2 GPUs (40, 50, one failure) and 2 nodes x 1 GPU (70) are one point, as on the charts
    assert (two["runs"], two["succeeded"], two["not_succeeded"]) == (4, 3, 1)
    assert sorted(two["layouts"].split(",")) == ["1x2", "2x1"]
    assert two["median_tokens_per_second"] == 50.0  # 40, 50, 70: the middle one; the failure is left out
    assert two["min_tokens_per_second"] == 40.0 and two["max_tokens_per_second"] == 70.0
    assert two["speedup"] == pytest.approx(50.0 / 20.0)
    assert two["efficiency"] == pytest.approx(50.0 / 20.0 / 2)
    assert one["sweep_name"] == "scaling" and one["speedup"] == 1.0


def test_run_summary_counts_ranks_hosts_and_outputs(store):
    rows = store._rows("SELECT * FROM run_summary ORDER BY run_id")
    assert len(rows) == 7
    multi = rows[-1]
    assert (multi["num_nodes"], multi["gpus_per_node"], multi["total_gpus"]) == (2, 1, 2)
    assert (multi["rank_count"], multi["host_count"], multi["output_count"]) == (2, 2, 4)
    assert multi["peak_memory_bytes"] == 1001
    failed = rows[5]
    assert failed["status"] == "failed" and failed["rank_count"] == 0 and "out of memory" in failed["error"]


def test_migration_is_idempotent(db_path, store):
    store.close()
    again = Store(db_path)  # a second open applies nothing twice and keeps the views
    names = [r["name"] for r in again._rows("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name")]
    assert names == ["run_summary", "sweep_summary"]
    assert again._rows("SELECT COUNT(*) AS n FROM _migrations WHERE name = '002_views'")[0]["n"] == 1


def test_datasette_opens_the_database_as_it_is(db_path, store):
    from datasette.app import Datasette  # in the test extra

    store.close()
    ds = Datasette([str(db_path)])
    name = db_path.stem

    async def get(path: str):
        return await ds.client.get(path)

    async def fetch_all():
        return [await get(p) for p in (f"/{name}/sweep_summary.json?_shape=objects",
                                       f"/{name}/ranks.json?_labels=on&_shape=objects", f"/{name}")]

    summary, ranks, index = asyncio.run(fetch_all())
    assert summary.status_code == 200 and ranks.status_code == 200 and index.status_code == 200
    assert {r["total_gpus"] for r in summary.json()["rows"]} == {1, 2}
    # the foreign key ranks.run_id -> runs.id is there for Datasette to follow
    assert ranks.json()["rows"][0]["run_id"] == {"value": 1, "label": "1"}
    assert "sweep_summary" in index.text and "run_summary" in index.text


def test_every_column_is_described_in_the_docs(store):
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for table in ("runs", "outputs", "ranks", "sweeps", "launches"):
        section = re.search(rf"^#### `{table}`\n(.*?)(?=^#|\Z)", docs, re.S | re.M)
        assert section, f"docs/deploy.md has no column list for {table}"
        described = set(re.findall(r"^\| `(\w+)` \|", section.group(1), re.M))
        columns = {r["name"] for r in store._rows(f"PRAGMA table_info({table})")}
        assert columns <= described, f"{table}: undescribed columns {sorted(columns - described)}"
