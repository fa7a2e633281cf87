"""The server sweep's analysis (issue 26) on constructed curves: the knee, the
highest rate meeting the SLO, and the sentence comparing layouts."""

from studio.analysis.serving import Point, curves, knee, sentence

SLO = {"ttft_ms": 2000.0, "tpot_ms": 200.0}


def pts(rows):
    return [Point(rate, served, lat, lat, None, None, False) for rate, served, lat in rows]


def test_the_knee_is_the_last_rate_before_latency_grows_without_throughput():
    # served keeps up to 3 req/s, then 4 offered gives 3.2 served at 3x the latency
    curve = pts([(1, 1.0, 100), (2, 2.0, 110), (3, 2.9, 150), (4, 3.2, 450), (5, 3.3, 900)])
    assert knee(curve) == 3


def test_latency_growing_with_throughput_is_no_knee():
    # latency doubles, but every added req/s is served: the server is busier, not saturated
    assert knee(pts([(1, 1.0, 100), (2, 2.0, 200), (3, 3.0, 400)])) is None


def test_throughput_flat_with_latency_flat_is_no_knee():
    assert knee(pts([(1, 1.0, 100), (2, 1.1, 105)])) is None


def test_the_knee_is_found_in_any_order_of_loads():
    assert knee(pts([(4, 3.2, 450), (1, 1.0, 100), (3, 2.9, 150)])) == 3


def test_a_throughput_load_is_left_out_of_the_knee():
    curve = pts([(1, 1.0, 100), (2, 2.0, 110)]) + [Point(2.1, 2.1, 900, 900, None, None, False, profile="throughput")]
    assert knee(curve) is None


def run(gpus, rate, served, p99, *, tp=1, status="succeeded", errors=0):
    return {"status": status, "num_gpus": gpus, "tp_size": tp, "dp_size": gpus // tp, "offered_rate": rate,
            "requests_per_second": served, "latency_ms_p50": p99, "latency_ms_p99": p99, "ttft_ms_p50": p99 / 2,
            "ttft_ms_p99": p99, "tpot_ms_p99": 50.0, "errors": errors}


def test_highest_rate_meeting_the_slo_per_layout_and_the_sentence():
    runs = [run(4, 2.0, 2.0, 800), run(4, 3.1, 3.0, 1900), run(4, 4.0, 3.2, 2600),
            run(8, 4.0, 4.0, 900), run(8, 5.2, 5.1, 1999), run(8, 6.0, 5.3, 3000),
            run(8, 5.5, 5.2, 1500, errors=1)]  # errors never meet the SLO
    found = curves(runs, SLO)
    assert [(c.gpus, c.best_rate) for c in found] == [(4, 3.1), (8, 5.2)]
    assert sentence(found, SLO) == ("4 GPUs as 4 replicas sustain 3.1 req/s within TTFT p99 2 s and TPOT p99 "
                                    "200 ms; 8 GPUs as 8 replicas give 5.2 (0.84 per GPU of 4 GPUs as 4 replicas).")


def test_layouts_are_separate_curves_and_a_missed_slo_is_named():
    runs = [run(2, 1.0, 1.0, 2500, tp=2), run(2, 1.0, 1.0, 500), run(2, 1.0, 1.0, 1, status="failed")]
    found = curves(runs, SLO)
    assert [c.name for c in found] == ["2 GPUs as 2 replicas", "2 GPUs as TP 2"]
    assert sentence(found, SLO).endswith("Not met at any rate offered: 2 GPUs as TP 2.")
    assert sentence(found, None).startswith("Give latency limits for goodput (ttft=MS,tpot=MS)")
    assert "No layout met" in sentence(curves(runs[:1], SLO), SLO)


def test_the_chart_draws_a_line_per_layout_and_marks_the_knee():
    from studio.charts.serving import latency_rate_figure

    runs = [run(1, r, s, lat) for r, s, lat in ((1, 1.0, 100), (2, 2.0, 110), (3, 2.9, 150), (4, 3.2, 450))]
    runs += [run(2, r, s, lat) for r, s, lat in ((2, 2.0, 100), (4, 4.0, 120))]
    fig = latency_rate_figure(curves(runs, SLO), SLO)
    names = [t.name for t in fig.data]
    assert names.count("1 GPU") == 2 and names.count("2 GPUs as 2 replicas") == 2
    knees = [t for t in fig.data if t.name.endswith("knee")]
    assert [(t.name, t.x[0]) for t in knees] == [("1 GPU: knee", 3.0)]
    assert any(s.y0 == 2000.0 for s in fig.layout.shapes)


def test_the_chart_says_when_there_is_nothing_to_draw():
    from studio.charts.serving import latency_rate_figure

    fig = latency_rate_figure([])
    assert "No server load" in fig.layout.annotations[0].text


def test_the_analysis_tab_shows_a_server_sweep_and_hides_for_an_offline_one(store):
    from db.serving import add_server_runs
    from studio.web.serving_panel import server_view

    sweep = store.create_sweep({"model": "tiny", "mode": "server", "slo": "ttft=2000,tpot=200"}, [1], 1,
                               origin="cli")
    rows = [{**run(1, r, s, lat), "model": "tiny", "max_new_tokens": 32, "num_prompts": 4, "config": {}, "batch_size": 0,
             "profile": "constant"} for r, s, lat in ((1, 1.0, 100), (2, 2.0, 110), (3, 2.9, 150), (4, 3.2, 4500))]
    for row in rows:
        row.pop("dp_size")
    add_server_runs(store, sweep, rows)
    text, fig = server_view(store, sweep)
    assert "1 GPU: knee at **3 req/s**; highest rate within the SLO **3 req/s**" in text
    assert "1 GPU sustains 3 req/s within TTFT p99 2 s" in text
    assert any(t.name == "1 GPU: knee" for t in fig.data)
    offline = store.create_sweep({"model": "tiny", "mode": "batched"}, [1], 1, origin="cli")
    assert server_view(store, offline) == ("", None)


def test_a_load_whose_client_lagged_is_left_out_of_the_knee():
    # the lagged load at 3 req/s alone makes a saturated step (2 → 3); without it 2 → 4 serves all
    curve = pts([(1, 1.0, 100), (2, 2.0, 110), (4, 4.0, 120)])
    curve.append(Point(3, 2.2, 200, 200, None, None, False, lagged=True))
    assert knee(curve) is None
    assert knee([p if p.rate != 3 else Point(3, 2.2, 200, 200, None, None, False) for p in curve]) == 2


def test_the_offline_analysis_leaves_a_server_sweep_to_its_panel(store):
    from db.serving import add_server_runs
    from studio.web.analysis_tab import analyse

    sweep = store.create_sweep({"model": "tiny", "mode": "server"}, [1], 1, origin="cli")
    add_server_runs(store, sweep, [{**run(1, r, r, 100.0), "model": "tiny", "max_new_tokens": 32, "num_prompts": 4,
                                    "config": {}, "batch_size": 0} for r in (1.0, 2.0)])
    out = analyse(store, sweep)
    assert "server scenario" in out["explanation"] and out["throughput"] is None


def test_the_cost_panel_says_it_costs_offline_sweeps_for_a_server_one(store):
    from db.serving import add_server_runs
    from studio.web.cost_panel import cost_view

    sweep = store.create_sweep({"model": "tiny", "mode": "server"}, [1], 1, origin="cli")
    add_server_runs(store, sweep, [{**run(1, r, r, 100.0), "model": "tiny", "max_new_tokens": 32, "num_prompts": 4,
                                    "config": {}, "batch_size": 0} for r in (1.0, 2.0)])
    assert "server scenario" in cost_view(store, sweep, None, None)
