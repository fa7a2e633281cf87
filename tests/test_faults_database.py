"""The database under fire: a writer SIGKILLed in the middle of writing runs, then
reopened (migrations on start-up); a reader while a long write is under way."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT
from faultkit import assert_database_sound, store_earlier_run

from db.store import Store
from studio.sweeps.supervisor import Supervisor

pytestmark = pytest.mark.timeout(120)

OUTPUTS_PER_RUN = 3000  # big enough that a good share of each run's time is inside its transaction

# Writes runs in a loop the way the supervisor does: create the row (queued), mark it
# running, then store the whole result (run + outputs + ranks) in one transaction.
WRITER = textwrap.dedent(
    f"""
    import sys
    from db.store import Store
    from runner.result import RunResult

    store = Store(sys.argv[1])
    n = {OUTPUTS_PER_RUN}
    config = {{"prompts": ["p"] * n, "model": "tiny", "mode": "batched", "batch_size": 8,
              "max_new_tokens": 4, "num_gpus": 2}}
    print("READY", flush=True)
    while True:
        run_id = store.create_run(config)
        store.mark_running(run_id, [123])
        outputs = [{{"prompt_index": i, "rank": i % 2, "prompt": "p", "output": "o" * 200, "tokens": 4,
                    "raw_tokens": 4}} for i in range(n)]
        ranks = [{{"rank": r, "num_prompts": n // 2, "tokens": 2 * n, "raw_tokens": 2 * n, "seconds": 1.0}}
                 for r in range(2)]
        store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=2, tokens=4 * n,
                                           raw_tokens=4 * n, seconds=1.0, tokens_per_second=4.0 * n,
                                           outputs=outputs, ranks=ranks))
    """
)


def _start_writer(db_path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "READY"
    return writer


@pytest.mark.slow  # a writer process killed mid-write, many times over
def test_sigkill_during_writes_leaves_a_sound_database_with_no_half_written_run(db_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    store.close()
    rng = random.Random(6)
    caught_mid_run = 0
    for _ in range(6):
        writer = _start_writer(db_path)
        time.sleep(rng.uniform(0.6, 1.6))  # lands inside some run's write most of the time
        writer.kill()
        writer.wait(10)
        assert_database_sound(db_path, [earlier])
        conn = sqlite3.connect(str(db_path))
        try:
            for run_id, status, outputs, ranks, tps in conn.execute(
                "SELECT r.id, r.status, (SELECT COUNT(*) FROM outputs o WHERE o.run_id = r.id), "
                "(SELECT COUNT(*) FROM ranks k WHERE k.run_id = r.id), r.tokens_per_second FROM runs r "
                "WHERE r.id != ?", (earlier["id"],)
            ):
                if status == "succeeded":  # all of it or none of it
                    assert (outputs, ranks) == (OUTPUTS_PER_RUN, 2), f"run {run_id} is half-written"
                    assert tps is not None
                else:
                    assert status in ("queued", "running", "interrupted")
                    assert (outputs, ranks, tps) == (0, 0, None), f"run {run_id} is half-written"
                    caught_mid_run += status in ("queued", "running")
        finally:
            conn.close()
    # most kills land inside a run's write (~2/3 of the writer's time): prove some did
    assert caught_mid_run >= 1
    # restart: the supervisor opens it (migrations run), and what was left mid-write is interrupted
    supervisor = Supervisor(db_path)
    try:
        statuses = {r["status"] for r in supervisor.store.list_runs(limit=10_000)}
        assert statuses <= {"succeeded", "interrupted"}
        assert "succeeded" in statuses
    finally:
        supervisor.shutdown()
    assert_database_sound(db_path, [earlier])


@pytest.mark.slow
def test_a_reader_never_sees_database_is_locked_during_a_long_write(db_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    writer = _start_writer(db_path)
    slowest, reads = 0.0, 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            t = time.monotonic()
            # a fresh reader each time, as a page request or `studio runs` would open one;
            # no busy timeout at all: any wait on the writer would raise "database is locked"
            reader = Store(db_path)
            reader.conn.execute("PRAGMA busy_timeout = 0")
            runs = reader.list_runs(limit=5)
            run = reader.get_run(runs[-1]["id"])
            reader.close()
            raw = sqlite3.connect(str(db_path), timeout=0)
            count = raw.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]
            raw.close()
            assert run is not None and count >= 4
            slowest = max(slowest, time.monotonic() - t)
            reads += 1
    finally:
        writer.kill()
        writer.wait(10)
    assert reads > 10
    assert slowest < 1.0, f"a read waited {slowest:.2f} s for the writer"
    assert_database_sound(db_path, [earlier])
