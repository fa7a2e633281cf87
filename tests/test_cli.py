"""`studio` as a user types it: in process where nothing is launched (conftest.invoke_cli), in a
fresh interpreter where a run is."""

import json

import pytest
from conftest import beyond_the_cap, run_cli

from db.store import Store


@pytest.mark.slow
def test_run_sweep_1_2_stores_two_runs_and_prints_json(db_path, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("The King is dead.\nIt was a bright cold day in April.\nCall me Ishmael.\n")
    proc = run_cli("run", "--gpus", "1,2", "--device", "cpu", "--json", "--prompts", str(prompts), "--max-new-tokens", "8",
                   "--db", str(db_path))
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    assert [r["num_gpus"] for r in runs] == [1, 2]
    for r in runs:
        assert r["status"] == "succeeded" and r["tokens"] > 0 and r["seconds"] > 0 and r["tokens_per_second"] > 0
        assert {"id", "sweep_id", "repeat_index"} <= set(r)
    stored = Store(db_path).list_runs()
    assert sorted(r["id"] for r in stored) == sorted(r["id"] for r in runs)

    listed = run_cli("runs", "--json", "--db", str(db_path))
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2

    shown = run_cli("show", str(runs[1]["id"]), "--db", str(db_path))
    assert shown.returncode == 0
    assert "Call me Ishmael." in shown.stdout and "rank 1" in shown.stdout

    table = run_cli("runs", "--db", str(db_path))
    assert "succeeded" in table.stdout and "tokens/s" in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "batch_size: must be at least 1"),
        (["--gpus", "0"], "gpus: must be at least 1, got 0"),
        (["--gpus", "1,x"], "'x' is not a whole number"),
        (["--gpus", str(beyond_the_cap())], "this machine allows at most"),
        (["--model", "/no/such/model"], "model"),
        (["--max-new-tokens", "5000"], "context"),
        (["--prompts", "/no/such/prompts.txt"], "cannot read"),
        (["--model", "arch:gpt-9"], "unknown architecture"),
        (["--repeats", "0"], "repeats"),
    ],
)
def test_bad_input_is_one_clear_line_and_launches_nothing(db_path, args, message, cli):
    proc = cli("run", *args, "--db", str(db_path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("studio: error:")
    assert message in lines[0]
    assert not db_path.exists() or Store(db_path).list_runs() == []


def test_empty_prompt_file(db_path, tmp_path, cli):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    proc = cli("run", "--prompts", str(empty), "--db", str(db_path))
    assert proc.returncode == 2 and "holds no prompts" in proc.stderr


def test_show_unknown_run(db_path, cli):
    proc = cli("show", "424242", "--db", str(db_path))
    assert proc.returncode == 2 and "there is no run 424242" in proc.stderr


def test_runs_on_an_empty_database(db_path, cli):
    proc = cli("runs", "--db", str(db_path))
    assert proc.returncode == 0 and "no runs yet" in proc.stdout


def test_db_from_environment(tmp_path, cli):
    db = tmp_path / "env.db"
    proc = cli("runs", "--json", env={"STUDIO_DB": str(db)})
    assert proc.returncode == 0 and json.loads(proc.stdout) == [] and db.exists()


def test_the_entry_point_in_a_fresh_interpreter_refuses_in_one_line(db_path):
    # the tests above call main() in process; this one goes through `python -m studio`, so the entry
    # point's exit status and a stderr holding nothing but the refusal (no import noise) stay checked
    proc = run_cli("run", "--batch-size", "0", "--db", str(db_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["studio: error: batch_size: must be at least 1, got 0"]
    assert not db_path.exists()
