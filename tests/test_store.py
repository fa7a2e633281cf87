import pytest

from db.store import Store
from runner.config import RunConfig
from runner.result import RunResult


def config(**kw):
    return RunConfig(prompts=["a", "b"], **kw).to_dict()


def success(cfg):
    return RunResult(
        status="succeeded", config=cfg, device="cpu", dtype="float32", world_size=2, tokens=7, raw_tokens=9,
        seconds=0.5, tokens_per_second=14.0,
        ranks=[{"rank": 0, "num_prompts": 1, "tokens": 3, "raw_tokens": 4, "seconds": 0.5, "peak_memory_bytes": 10},
               {"rank": 1, "num_prompts": 1, "tokens": 4, "raw_tokens": 5, "seconds": 0.4, "peak_memory_bytes": 11}],
        outputs=[{"prompt_index": 0, "rank": 0, "prompt": "a", "output": "x", "tokens": 3, "raw_tokens": 4},
                 {"prompt_index": 1, "rank": 1, "prompt": "b", "output": "y", "tokens": 4, "raw_tokens": 5}],
        environment={"nodes": []},
    )


def test_a_run_is_stored_whole(db_path):
    store = Store(db_path)
    cfg = config(gpus_per_node=2)
    run_id = store.create_run(cfg)
    store.finish_run(run_id, success(cfg))
    run = store.get_run(run_id)
    assert run["status"] == "succeeded" and run["tokens"] == 7 and run["padding_tokens"] == 2
    assert [o["output"] for o in run["outputs"]] == ["x", "y"]
    assert [r["rank"] for r in run["ranks"]] == [0, 1]
    assert run["config"]["gpus_per_node"] == 2 and run["num_gpus"] == 2  # JSON columns come back decoded
    assert run["imbalance"] == pytest.approx(0.5 / 0.45)


def test_a_failed_run_never_carries_throughput(db_path):
    store = Store(db_path)
    cfg = config()
    run_id = store.create_run(cfg)
    result = success(cfg)
    result.status, result.error = "failed", "rank 1 died"
    store.finish_run(run_id, result)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == "rank 1 died"
    assert run["tokens_per_second"] is None and run["tokens"] is None and run["seconds"] is None


def test_filters_and_newest_first(db_path):
    store = Store(db_path)
    first = store.create_run(config(mode="simple"))
    second = store.create_run(config(batch_size=4))
    assert [r["id"] for r in store.list_runs()] == [second, first]
    assert [r["id"] for r in store.list_runs(mode="simple")] == [first]
    assert [r["id"] for r in store.list_runs(batch_size=4)] == [second]


def test_delete_cascades_but_not_while_running(db_path):
    store = Store(db_path)
    cfg = config()
    done = store.create_run(cfg)
    store.finish_run(done, success(cfg))
    running = store.create_run(cfg, status="running")
    with pytest.raises(ValueError, match="stop it"):
        store.delete_runs([running])
    assert store.delete_runs([done]) == 1
    assert store.conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 0
    assert store.get_run(running) is not None


def test_stale_runs_become_interrupted(db_path):
    store = Store(db_path)
    left = store.create_run(config(), status="running")
    store.close()
    reopened = Store(db_path)
    assert reopened.mark_stale_interrupted() == [left]
    assert reopened.get_run(left)["status"] == "interrupted"
