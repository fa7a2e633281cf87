"""`studio import` of other tools' results from the command line (in-process), the
API's /import_results handler, and imported runs taking part in what the studio does
with runs: `studio show`, the JSON export, `studio report --compare` (A/B, and one
side-by-side page of a GuideLLM sweep, an AIPerf run and a studio sweep)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from test_views import add_run

from db.store import Store
from studio.cli.commands import main

FIXTURES = ROOT / "tests" / "fixtures" / "peers"
GUIDELLM = FIXTURES / "guidellm-0.8.1-concurrent" / "benchmarks.json"
AIPERF = FIXTURES / "aiperf-0.13.0-errors" / "artifacts"


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "studio.db")


def test_cli_imports_several_paths_with_labels_and_a_second_time_adds_nothing(db, capsys):
    assert main(["import", str(GUIDELLM), str(AIPERF / "profile_export.jsonl"), "--label", "gpus=1,gpu=CPU",
                 "--label", "engine=guidellm-mock", "--db", db]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "benchmarks.json: imported 2 run(s) from guidellm 0.8.1 as sweep 1, runs 1-2",
        "profile_export.jsonl: imported 1 run(s) from aiperf 0.13.0 as sweep 2, run 3"]
    assert "ttft_ms_p50 differs by +1.2% from guidellm's ttft_ms_p50" in out.err  # the percentile rule
    assert main(["import", str(GUIDELLM), "--db", db]) == 0
    assert "already imported (guidellm 0.8.1, sweep 1, runs 1-2); nothing added" in capsys.readouterr().out
    run = Store(db).get_run(3)
    assert (run["device"], run["config"]["imported"]["engine"]) == ("CPU", "guidellm-mock")

    assert main(["show", "1", "--db", db]) == 0
    shown = capsys.readouterr().out
    assert "imported from: GuideLLM 0.8.1: benchmarks.json, benchmark 1: concurrency 1 (read-only; recounted)" in shown
    assert "<- TPOT definition: guidellm:" in shown


def test_cli_refuses_a_bad_file_with_its_name_and_stores_nothing(db, tmp_path, capsys):
    (tmp_path / "empty.json").write_text("")
    assert main(["import", str(GUIDELLM), str(tmp_path / "empty.json"), "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("studio: error: empty.json: nothing imported: is empty") and str(tmp_path) not in err
    assert Store(db).list_runs() == []
    assert main(["import", str(GUIDELLM), "--label", "gpus=many", "--db", db]) == 2
    assert "--label gpus=many" in capsys.readouterr().err


def test_report_sets_a_guidellm_sweep_an_aiperf_run_and_a_studio_sweep_side_by_side(db, tmp_path, capsys):
    assert main(["import", str(GUIDELLM), str(AIPERF), "--db", db]) == 0
    store = Store(db)
    studio = store.create_sweep({"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8,
                                 "num_prompts": 4}, [1, 2], 1, name="measured here")
    add_run(store, studio, 1, 20.0)
    add_run(store, studio, 2, 35.0)
    page = tmp_path / "side.html"
    assert main(["report", "1", "--compare", f"2,{studio}", "--output", str(page), "--db", db]) == 0
    text = page.read_text()
    for words in ("GuideLLM 0.8.1", "AIPerf 0.13.0", "Scaling Studio", "concurrency 4", "recounted",
                  "measured here", "Latency against request rate", "Throughput per GPU against speed per user",
                  "GuideLLM 0.8.1 tpot: (last token − request sent) ÷ output tokens"):
        assert words in text, words
    assert "Plotly.newPlot" in text and 'src="https://cdn.plot.ly' not in text  # plotly.js inlined: opens offline

    ab = tmp_path / "ab.json"
    assert main(["report", "1", "--compare", "2", "--format", "json", "--output", str(ab), "--db", db]) == 0
    assert json.loads(ab.read_text())["ab"]
    html_report = tmp_path / "ab.html"
    assert main(["report", "1", "--compare", str(studio), "--output", str(html_report), "--db", db]) == 0
    assert "imported: GuideLLM 0.8.1, benchmarks.json; measured outside the studio" in html_report.read_text()


def test_api_handler_imports_texts_and_the_json_export_carries_the_origin(db, tmp_path):
    from studio.web.history import export_text
    from studio.web.import_handlers import import_texts

    store = Store(db)
    files = {name: (AIPERF / name).read_text() for name in ("profile_export.jsonl", "profile_export_aiperf.json")}
    assert import_texts(store, files, "gpus=2") == {
        "imported": ["upload: imported 1 run(s) from aiperf 0.13.0 as sweep 1, run 1"]}
    run = store.get_run(1)
    assert run["num_gpus"] == 2 and run["scenario"] == "concurrency 2" and run["tokens_per_second"] > 0
    exported = json.loads(export_text(store, store.list_runs(), "json"))
    assert exported[0]["config"]["imported"]["tool"] == "aiperf" and exported[0]["tool"] == "aiperf"
    assert "aiperf" not in export_text(store, store.list_runs(), "csv").splitlines()[0]  # CSV: the summary columns

    from runner.config import ConfigError
    with pytest.raises(ConfigError, match="passwd: nothing imported"):  # a path in a name stays a name
        import_texts(store, {"../../etc/passwd": "root:x:0:0"})
    with pytest.raises(ConfigError, match="send"):
        import_texts(store, ["not", "a", "dict"])
