"""Other tools' results in the studio's history (studio.exchange.peers): every fixture
that GuideLLM and AIPerf wrote here, and the vLLM and inference-benchmarker files
shaped after their source, imports as one read-only run per benchmark; GuideLLM's
figures are recounted with the studio's definitions and agree where the definitions
agree, and differ exactly as they say where they do not; importing a file again adds
nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import ROOT

from db.store import Store
from studio.exchange.peers.importer import import_paths
from studio.exchange.peers.recount import lower_percentile

FIXTURES = ROOT / "tests" / "fixtures" / "peers"
GUIDELLM = {"guidellm-0.8.1-concurrent/benchmarks.json": "v2", "guidellm-0.6.1-poisson/benchmarks.json": "v1",
            "guidellm-0.3.1-constant/benchmarks.json": "v0", "guidellm-0.3.1-synchronous/benchmarks.yaml": "v0"}
# path: (tool, version, runs, aggregates only, scenarios)
EXPECTED = {
    "guidellm-0.8.1-concurrent/benchmarks.json": ("guidellm", "0.8.1", 2, False, {"concurrency 1", "concurrency 4"}),
    "guidellm-0.6.1-poisson/benchmarks.json": ("guidellm", "0.6.1", 1, False, {"poisson rate 4 req/s"}),
    "guidellm-0.3.1-constant/benchmarks.json": ("guidellm", None, 1, False, {"constant rate 3 req/s"}),
    "guidellm-0.3.1-synchronous/benchmarks.yaml": ("guidellm", None, 1, False, {"synchronous"}),
    "aiperf-0.13.0-sweep/artifacts": ("aiperf", "0.13.0", 2, False, {"concurrency 1", "concurrency 4"}),
    "aiperf-0.13.0-errors/artifacts/profile_export.jsonl": ("aiperf", "0.13.0", 1, False, {"concurrency 2"}),
    "vllm-0.34.0/serve-detailed.json": ("vllm", None, 1, False, {"concurrency 4"}),
    "vllm-0.34.0/serve-append.json": ("vllm", None, 2, True, {"poisson rate 2 req/s", "poisson rate 4 req/s"}),
    "vllm-0.34.0/sweep/20260301_103000": ("vllm", None, 4, True, {"concurrency 1", "concurrency 4"}),
    "vllm-0.34.0/throughput.json": ("vllm", None, 1, True, {"offline"}),
    "vllm-0.34.0/latency.json": ("vllm", None, 1, True, {"offline"}),
    "inference-benchmarker-1.1.0/results": ("inference-benchmarker", None, 2, True,
                                            {"constant rate 1 req/s", "constant rate 4 req/s"}),
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Every fixture imported once into one database: {path: report}."""
    store = Store(tmp_path_factory.mktemp("peers") / "studio.db")
    reports = {path: import_paths(store, [FIXTURES / path])[0] for path in EXPECTED}
    yield store, reports
    store.close()


def counts(store: Store) -> tuple[int, ...]:
    return tuple(store.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("sweeps", "runs", "outputs", "imports"))


@pytest.mark.parametrize("path", list(EXPECTED))
def test_each_fixture_imports_one_run_per_benchmark_with_its_origin(imported, path):
    store, reports = imported
    tool, version, runs, aggregates_only, scenarios = EXPECTED[path]
    report = reports[path]
    assert (report.tool, report.version, len(report.run_ids), report.aggregates_only) == (
        tool, version, runs, aggregates_only)
    stored = [store.get_run(i) for i in report.run_ids]
    assert {r["scenario"] for r in stored} == scenarios
    for run in stored:
        origin = run["config"]["imported"]
        assert run["tool"] == tool and run["status"] == "succeeded" and run["sweep_id"] == report.sweep_id
        assert origin["file"] == report.file_name and report.file_name in (Path(path).name, *(
            p.name for p in (FIXTURES / path).glob("*")))
        assert origin["aggregates_only"] == aggregates_only
        assert bool(run["outputs"]) != aggregates_only  # per-request figures only where the file had them
    assert store.get_sweep(report.sweep_id)["origin"] == "import"


def guidellm_requests(path: str) -> list[list[dict]]:
    """Each benchmark's successful requests as GuideLLM wrote them, with its own per-request figures."""
    text = (FIXTURES / path).read_text()
    if path.endswith(".yaml"):
        import yaml
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return [b["requests"]["successful"] for b in data["benchmarks"]], [b["metrics"] for b in data["benchmarks"]]


@pytest.mark.parametrize("path", list(GUIDELLM))
def test_guidellm_ttft_recounted_equals_guidellms_per_request_and_p50_within_1_percent(imported, path):
    store, reports = imported
    benchmarks, metrics = guidellm_requests(path)
    for run_id, requests, tool in zip(reports[path].run_ids, benchmarks, metrics):
        run = store.get_run(run_id)
        mine = [o["ttft_ms"] for o in run["outputs"]]
        theirs = [r["time_to_first_token_ms"] for r in requests]
        assert mine == pytest.approx(theirs, rel=1e-9)  # the same definition: first token − request sent
        p50 = tool["time_to_first_token_ms"]["successful"]["percentiles"]["p50"]
        comparison = {d["metric"]: d for d in run["config"]["imported"]["comparison"] if d["tool_metric"] == d["metric"]}
        if abs(run["ttft_ms_p50"] - p50) / p50 <= 0.01:
            assert comparison["ttft_ms_p50"]["cause"] is None
        else:  # only GuideLLM's percentile rule parts them: it reproduces GuideLLM's p50 from the same requests
            assert lower_percentile(mine, 50) == pytest.approx(p50, rel=1e-9)
            assert comparison["ttft_ms_p50"]["cause"].startswith("percentile rule")


def test_guidellm_ttft_p50_agreement_as_measured(imported):
    """The numbers docs/import.md quotes: 16 requests, an even count, part the two percentile rules by half
    the gap between the middle two (+1.24 %); an odd count (15, 9, 5) picks the same middle request."""
    store, reports = imported
    measured = {}
    for path in GUIDELLM:
        for run_id in reports[path].run_ids:
            diff = next(d for d in store.get_run(run_id)["config"]["imported"]["comparison"]
                        if d["metric"] == d["tool_metric"] == "ttft_ms_p50")
            measured[(path.split("/")[0], store.get_run(run_id)["scenario"])] = round(diff["percent"], 2)
    assert measured == {("guidellm-0.8.1-concurrent", "concurrency 1"): 1.24,
                        ("guidellm-0.8.1-concurrent", "concurrency 4"): 0.68,
                        ("guidellm-0.6.1-poisson", "poisson rate 4 req/s"): 0.0,
                        ("guidellm-0.3.1-constant", "constant rate 3 req/s"): 0.0,
                        ("guidellm-0.3.1-synchronous", "synchronous"): 0.0}


@pytest.mark.parametrize("path", list(GUIDELLM))
def test_guidellm_tpot_differs_exactly_as_the_definitions_say(imported, path):
    """GuideLLM 0.5+: time_per_output_token_ms × N = TTFT + studio TPOT × (N − 1) (the first token and its
    wait included); GuideLLM 0.3: × N = studio TPOT × (N − 1) (the wait left out, the token counted);
    and GuideLLM's inter_token_latency_ms is the studio's TPOT, request by request."""
    store, reports = imported
    benchmarks, _ = guidellm_requests(path)
    for run_id, requests in zip(reports[path].run_ids, benchmarks):
        run = store.get_run(run_id)
        for output, request in zip(run["outputs"], requests):
            n = request["output_tokens"]
            assert output["tokens"] == n and n > 1
            tool_total = request["time_per_output_token_ms"] * n
            expected = output["tpot_ms"] * (n - 1) + (output["ttft_ms"] if GUIDELLM[path] != "v0" else 0.0)
            assert tool_total == pytest.approx(expected, rel=1e-6)
            assert request["inter_token_latency_ms"] == pytest.approx(output["tpot_ms"], rel=1e-6)
        tpot = next(d for d in run["config"]["imported"]["comparison"] if d["metric"] == d["tool_metric"] == "tpot_ms_p50")
        assert tpot["cause"].startswith("TPOT definition: guidellm:")
        assert ("first token and its wait included" in tpot["cause"]) == (GUIDELLM[path] != "v0")


def test_aiperf_and_vllm_recounts_agree_with_the_tools_where_definitions_agree(imported):
    store, reports = imported
    for path in ("aiperf-0.13.0-sweep/artifacts", "vllm-0.34.0/serve-detailed.json"):
        for run_id in reports[path].run_ids:
            for diff in store.get_run(run_id)["config"]["imported"]["comparison"]:
                if diff["metric"] != "tokens_per_second":  # each tool's own window: docs/import.md
                    assert abs(diff["percent"]) < 1e-3, (path, diff)  # epoch seconds in doubles: ~0.2 µs


def test_failed_requests_are_counted_and_left_out_of_the_latencies(imported):
    store, reports = imported
    aiperf = store.get_run(reports["aiperf-0.13.0-errors/artifacts/profile_export.jsonl"].run_ids[0])
    assert (aiperf["config"]["imported"]["completed"], aiperf["config"]["imported"]["failed"]) == (6, 2)
    assert len(aiperf["outputs"]) == 6 and aiperf["num_prompts"] == 8
    vllm = store.get_run(reports["vllm-0.34.0/serve-detailed.json"].run_ids[0])
    assert (vllm["config"]["imported"]["completed"], vllm["config"]["imported"]["failed"]) == (11, 1)
    assert all(o["ttft_ms"] > 0 for o in vllm["outputs"])  # the failed request's 0.0 is not a latency


def test_gpus_come_from_the_file_or_a_label(imported, tmp_path):
    store, reports = imported
    sweep = store.get_run(reports["vllm-0.34.0/sweep/20260301_103000"].run_ids[0])
    assert sweep["num_gpus"] == 2 and sweep["config"]["imported"]["gpus_from"] == "the file"  # tensor_parallel_size
    bench = store.get_run(reports["inference-benchmarker-1.1.0/results"].run_ids[0])
    assert (bench["num_gpus"], bench["device"], bench["config"]["imported"]["engine"]) == (2, "H100", "vllm")
    plain = store.get_run(reports["guidellm-0.6.1-poisson/benchmarks.json"].run_ids[0])
    assert plain["num_gpus"] == 1 and "not in the file" in plain["config"]["imported"]["gpus_from"]
    other = Store(tmp_path / "labels.db")
    report, = import_paths(other, [FIXTURES / "guidellm-0.6.1-poisson/benchmarks.json"], {"gpus": "8", "gpu": "H100"})
    labelled = other.get_run(report.run_ids[0])
    assert (labelled["num_gpus"], labelled["device"], labelled["config"]["imported"]["gpus_from"]) == (
        8, "H100", "--label gpus")


def test_importing_the_same_file_again_adds_nothing_and_deleting_lets_it_back(imported, tmp_path):
    store = Store(tmp_path / "again.db")
    path = FIXTURES / "guidellm-0.8.1-concurrent/benchmarks.json"
    first, = import_paths(store, [path])
    before = counts(store)
    again, = import_paths(store, [path], {"gpus": "4"})  # other labels: still the same content
    assert not again.added and again.sweep_id == first.sweep_id and counts(store) == before
    assert "already imported" in again.line()
    store.delete_sweep(first.sweep_id)
    assert counts(store) == (0, 0, 0, 0)
    back, = import_paths(store, [path])
    assert back.added and len(back.run_ids) == 2


def test_imported_runs_are_read_only(imported):
    store, reports = imported
    run_id = reports["vllm-0.34.0/serve-detailed.json"].run_ids[0]
    with pytest.raises(sqlite3.IntegrityError, match="read-only"):
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET tokens_per_second = 1 WHERE id = ?", (run_id,))
    with pytest.raises(sqlite3.IntegrityError, match="read-only"):
        with store.transaction() as conn:
            conn.execute("UPDATE sweeps SET name = 'x' WHERE id = ?", (reports["vllm-0.34.0/throughput.json"].sweep_id,))


def test_history_filters_imported_runs_by_tool_and_scenario(imported):
    from studio.web.import_handlers import imported_table

    store, _ = imported
    table = imported_table(store, "aiperf", "concurrency")
    assert set(table["tool"]) == {"AIPerf 0.13.0"} and set(table["scenario"]) == {"concurrency 1", "concurrency 4",
                                                                                    "concurrency 2"}
    assert {r["scenario"] for r in store.list_runs(tool="vllm", scenario="poisson rate 2 req/s")} == {
        "poisson rate 2 req/s"}
    assert set(store.distinct("tool")) >= {"guidellm", "aiperf", "vllm", "inference-benchmarker"}


def test_guidellm_errored_requests_are_counted_and_goodput_follows_the_slo(tmp_path):
    data = json.loads((FIXTURES / "guidellm-0.8.1-concurrent/benchmarks.json").read_text())
    requests = data["benchmarks"][0]["requests"]
    failed = requests["successful"].pop(3)
    failed["info"]["error"] = "HTTP 500"
    requests["errored"] = [failed]
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps(data))
    store = Store(tmp_path / "s.db")
    report, = import_paths(store, [path], slo={"ttft_ms": 45.0, "tpot_ms": 100.0, "name": "ttft=45 ms"})
    run = store.get_run(report.run_ids[0])
    origin = run["config"]["imported"]
    assert (origin["completed"], origin["failed"], len(run["outputs"]), run["num_prompts"]) == (15, 1, 15, 16)
    within = sum(o["tokens"] for o in run["outputs"] if o["ttft_ms"] <= 45.0)
    assert 0 < within < run["tokens"]
    assert origin["recounted"]["goodput"] == pytest.approx(within / run["seconds"])


def test_the_analysis_tab_opens_on_a_sweep_measured_here_not_an_import(tmp_path):
    from studio.web.history import opening_sweep

    store = Store(tmp_path / "s.db")
    first, = import_paths(store, [FIXTURES / "guidellm-0.6.1-poisson/benchmarks.json"])
    assert opening_sweep(store.list_sweeps()) == first.sweep_id  # only imports: the newest of them
    mine = store.create_sweep({"model": "tiny", "mode": "batched"}, [1], 1, name="mine")
    import_paths(store, [FIXTURES / "vllm-0.34.0/serve-detailed.json"])  # a newer import
    assert opening_sweep(store.list_sweeps()) == mine
