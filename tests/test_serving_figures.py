"""Figures of a server load from hand-built request records (issue 26): the studio's
definitions (runner.metrics, via the importer's recount), measured requests only."""

import pytest

from studio.exchange.serving import load_figures, scenario


def rec(index, sent, tokens, *, measured=True, status=200, error=None, scheduled=None, out=None):
    return {"index": index, "scheduled_s": sent if scheduled is None else scheduled, "sent_s": sent,
            "first_token_s": tokens[0] if tokens else None, "token_s": list(tokens),
            "end_s": tokens[-1] if tokens else sent + 0.1, "prompt": "p", "output_text": "o",
            "prompt_tokens": 5, "output_tokens": len(tokens) if out is None else out,
            "status": status, "error": error, "measured": measured}


def load(requests, **kw):
    return {"profile": "constant", "rate": 2.0, "concurrency": None, "started_at": "2026-12-05T00:00:00+00:00",
            "duration_s": 2.0, "client_lagged": False, "max_client_lag_s": 0.0, "requests": requests, **kw}


def test_per_request_ttft_itl_tpot_latency_exclude_the_first_token():
    figures, rows = load_figures(load([rec(0, 1.0, [1.2, 1.3, 1.5, 1.6])]))
    row = rows[0]
    assert row["ttft_ms"] == pytest.approx(200.0)
    assert row["latency_ms"] == pytest.approx(600.0)
    assert row["tpot_ms"] == pytest.approx(400.0 / 3)  # (last − first) ÷ (tokens − 1)
    assert row["itl_ms"] == pytest.approx([100.0, 200.0, 100.0])
    assert figures["itl_ms_p50"] == pytest.approx(100.0)


def test_percentiles_rates_and_goodput_over_the_measured_requests_only():
    requests = [rec(0, 0.0, [5.0, 5.1], measured=False),  # warm-up: slow, must not count
                rec(1, 1.0, [1.1, 1.2]), rec(2, 1.5, [1.8, 1.9]), rec(3, 2.0, [2.4, 2.5]),
                rec(4, 9.0, [9.9, 9.95], measured=False)]  # cool-down
    figures, rows = load_figures(load(requests), {"ttft_ms": 250.0, "tpot_ms": 1000.0})
    assert len(rows) == 3
    assert figures["ttft_ms_p50"] == pytest.approx(300.0)
    assert figures["ttft_ms_p99"] == pytest.approx(300.0 + 0.98 * 100.0)  # linear interpolation
    # window: first measured send 1.0 to last measured response 2.5
    assert figures["seconds"] == pytest.approx(1.5)
    assert figures["requests_per_second"] == pytest.approx(2.0)
    assert figures["tokens_per_second"] == pytest.approx(6 / 1.5)
    assert figures["goodput"] == pytest.approx(2 / 1.5)  # only request 1 meets TTFT 250 ms
    assert figures["offered_rate"] == 2.0


def test_errors_are_counted_and_left_out_of_the_latencies():
    requests = [rec(0, 0.0, [0.1, 0.2]), rec(1, 0.0, [], status=500, error="HTTP 500: boom"),
                rec(2, 0.0, [0.5, 0.6], status=422)]
    figures, rows = load_figures(load(requests))
    assert figures["errors"] == 2 and figures["completed"] == 1
    assert figures["ttft_ms_p99"] == pytest.approx(100.0)
    assert rows[2]["ok"] is False and "422" in rows[2]["error"]


def test_client_lag_is_flagged_and_kept_per_request():
    requests = [rec(0, 1.3, [1.4, 1.5], scheduled=1.0)]
    figures, rows = load_figures(load(requests, client_lagged=True, max_client_lag_s=0.3))
    assert figures["client_lagged"] is True and figures["max_client_lag_s"] == 0.3
    assert rows[0]["client_lag_ms"] == pytest.approx(300.0)


def test_a_load_without_an_offered_rate_is_placed_at_its_achieved_rate():
    figures, _ = load_figures(load([rec(0, 0.0, [0.5, 1.0]), rec(1, 1.0, [1.5, 2.0])], profile="synchronous",
                                   rate=None, concurrency=1))
    assert figures["scenario"] == "synchronous"
    assert figures["offered_rate"] == pytest.approx(1.0)


def test_scenario_words_and_an_unknown_profile_is_named():
    assert scenario({"profile": "constant", "rate": 2.5}).label() == "constant rate 2.5 req/s"
    assert scenario({"profile": "concurrency", "concurrency": 4}).label() == "concurrency 4"
    with pytest.raises(ValueError, match="'burst'"):
        scenario({"profile": "burst"})


def cell(loads, **kw):
    return {"status": "succeeded", "error": None, "log_tail": "", "engine": "transformers serve tiny",
            "url": "http://127.0.0.1:8000", "gpus": 2, "tp_size": 1, "replicas": 2, "endpoint": "completions",
            "loads": loads, **kw}


def test_a_cell_is_stored_as_one_run_per_load_with_its_request_timings(store):
    from db.serving import add_server_runs, server_runs
    from studio.exchange.serving import run_rows

    loads = [load([rec(0, 0.0, [0.1, 0.2])], profile="synchronous", rate=None, concurrency=1),
             load([rec(0, 0.0, [0.3, 0.5]), rec(1, 0.5, [0.9, 1.0])], rate=2.0)]
    sweep = store.create_sweep({"model": "tiny", "mode": "server"}, [2], 1, origin="cli")
    ids = add_server_runs(store, sweep, run_rows(cell(loads), model="tiny", max_new_tokens=32))
    runs = server_runs(store, sweep)
    assert [r["id"] for r in runs] == ids and len(ids) == 2
    assert [r["scenario"] for r in runs] == ["synchronous", "constant rate 2 req/s"]
    assert runs[1]["offered_rate"] == 2.0 and runs[1]["num_gpus"] == 2 and runs[1]["dp_size"] == 2
    assert runs[1]["ttft_ms_p50"] == pytest.approx(350.0)
    outputs = store.outputs_for_runs([ids[1]])[ids[1]]
    assert [o["ttft_ms"] for o in outputs] == pytest.approx([300.0, 400.0])
    assert outputs[0]["itl_ms"] == pytest.approx([200.0])


def test_a_cell_that_failed_before_a_load_is_stored_as_failed_with_its_log_tail(store):
    from db.serving import add_server_runs, server_runs
    from studio.exchange.serving import run_rows

    bad = cell([], status="failed", error="server did not answer /health within 120 s", log_tail="OOM killed")
    sweep = store.create_sweep({"model": "tiny", "mode": "server"}, [1], 1, origin="cli")
    add_server_runs(store, sweep, run_rows(bad, model="tiny", max_new_tokens=32))
    run = server_runs(store, sweep)[0]
    assert run["status"] == "failed" and "/health" in run["error"] and run["server_log_tail"] == "OOM killed"


def test_a_load_the_server_died_in_is_failed_and_the_ones_before_kept():
    from studio.exchange.serving import run_rows

    loads = [load([rec(0, 0.0, [0.1, 0.2])]), load([rec(0, 0.0, []), rec(1, 0.0, [], status=None, error="reset")])]
    rows = run_rows(cell(loads, status="failed", error="server exited with 137", log_tail="Killed"),
                    model="tiny", max_new_tokens=32)
    assert [r["status"] for r in rows] == ["succeeded", "failed"]
    assert rows[1]["error"] == "server exited with 137" and rows[1]["server_log_tail"] == "Killed"
