"""Ctrl+C on `studio run` mid-run: the run's processes end with it and the run is
stored as cancelled, not left `running` for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from faultkit import FAULT_PROMPTS, assert_database_sound, assert_no_leftovers, store_earlier_run

from db.store import Store

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # real accelerate launches


def test_ctrl_c_on_the_cli_mid_run_cancels_and_leaves_no_process(db_path, tmp_path):
    store = Store(db_path)
    earlier = store_earlier_run(store)
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(FAULT_PROMPTS) + "\n")
    cli = subprocess.Popen(
        [sys.executable, "-m", "studio", "run", "--gpus", "2", "--device", "cpu", "--prompts", str(prompts),
         "--max-new-tokens", "4", "--batch-size", "1", "--no-warmup", "--db", str(db_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "STUDIO_TEST_PAUSE_BATCH": "5"},
    )
    try:
        deadline, pids = time.monotonic() + 120, []
        while time.monotonic() < deadline and len(pids) < 3:
            running = store.list_runs(status="running")
            pids = (running[0]["pids"] or []) if running else []
            assert cli.poll() is None, cli.stderr.read()
            time.sleep(0.3)
        assert len(pids) == 3, "the run never started its two ranks"
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=20)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130
    assert "studio: error: interrupted" in err
    assert_no_leftovers(pids, timeout=5, owner_pids=[cli.pid])
    runs = [r for r in store.list_runs() if r["id"] != earlier["id"]]
    assert len(runs) == 1 and runs[0]["status"] == "cancelled" and runs[0]["tokens_per_second"] is None
    assert store.get_sweep(runs[0]["sweep_id"])["status"] == "cancelled"
    assert_database_sound(db_path, [earlier])
