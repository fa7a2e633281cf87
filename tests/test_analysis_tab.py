"""The Analysis tab: its handlers as plain functions, then the tab in Chromium."""

import time

import plotly.graph_objects as go
import pytest
from conftest import analysis_tab_page

from db.store import Store
from runner.result import RunResult
from studio.sweeps.reference import ensure_reference_sweeps
from studio.web.analysis_tab import analyse, list_sweep_choices, timeline_for_run, write_report


def store_run_with_timeline(db_path) -> tuple[int, int]:
    """A stored 2-rank run whose ranks made 2 generate calls each (6 prompts... 3 each, batch 2)."""
    store = Store(db_path)
    config = {"model": "tiny", "mode": "batched", "batch_size": 2, "max_new_tokens": 4, "num_gpus": 2,
              "prompts": ["a", "b", "c", "d", "e", "f"]}
    sweep_id = store.create_sweep({**config, "num_prompts": 6}, [2], 1, name="timeline")
    run_id = store.create_run(config, sweep_id=sweep_id)
    ranks = []
    for rank in range(2):
        t0 = 1000.0 + rank * 0.2
        spans = [{"phase": "imports", "start": t0, "end": t0 + 1}, {"phase": "load", "start": t0 + 1, "end": t0 + 2},
                 {"phase": "barrier", "start": t0 + 2, "end": 1002.5}]
        spans += [{"phase": "generate", "start": 1002.5 + i, "end": 1003.4 + i, "batch": i, "size": 2 - i}
                  for i in range(2)]
        ranks.append({"rank": rank, "num_prompts": 3, "tokens": 12, "seconds": 1.8 + 0.2 * rank, "timeline": spans})
    store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=2, device="cpu", tokens=24,
                                       raw_tokens=24, seconds=2.0, tokens_per_second=12.0, ranks=ranks,
                                       phases={"launch": 0.5}))
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id, run_id


def test_listing_sweeps_writes_nothing(db_path):
    store = Store(db_path)
    assert list_sweep_choices(store) == []
    assert store.list_sweeps() == []  # the reference sweeps are stored on request, never by a listing
    ensure_reference_sweeps(store)
    choices = list_sweep_choices(store)
    assert len(choices) == 2 and all("reference, read-only" in label for label, _ in choices)


def test_no_sweep_picked_asks_for_one(db_path):
    store = Store(db_path)
    out = analyse(store, None)
    assert out["explanation"].startswith("No sweep yet") and out["throughput"] is None
    ensure_reference_sweeps(store)
    out = analyse(store, None)
    assert out["explanation"].startswith("Pick a sweep") and out["throughput"] is None


def test_reference_sweep_analysis(db_path, tmp_path):
    store = Store(db_path)
    ids = ensure_reference_sweeps(store)
    out = analyse(store, str(ids["batched"]))
    assert "Cause: work quantisation" in out["explanation"] and "read-only" in out["explanation"]
    assert list(out["points"]["GPUs"]) == ["1", "2", "3", "4", "5"]
    assert list(out["points"]["rounds (busiest)"]) == ["7", "4", "3", "2", "2"]
    assert {"Amdahl", "USL"} == set(out["fits"]["model"])
    names = {t.name for t in out["throughput"].data}
    assert {"median (95% CI)", "quantisation prediction", "USL fit", "ideal"} <= names
    assert isinstance(out["speedup"], go.Figure) and isinstance(out["efficiency"], go.Figure)
    assert out["run_choices"] == [] and out["timeline"] is None  # published figures have no timeline
    # the tab leads with the same one-sentence answer the deck gives, and hides the empty Pareto chart
    assert out["headline"].startswith("Cause: work quantisation") and out["pareto"] is None
    path = write_report(store, str(ids["batched"]), "", tmp_path)
    html = path.read_text(encoding="utf-8")
    assert path.name == f"sweep-{ids['batched']}-report.html" and path.parent.parent == tmp_path
    assert "Reference post: batched" in html and html.count("window.PlotlyConfig") == 1


def test_ab_between_two_sweeps(db_path):
    store = Store(db_path)
    ids = ensure_reference_sweeps(store)
    out = analyse(store, str(ids["simple"]), str(ids["batched"]))
    assert len(out["ab"]) == 5 and out["ab"]["B/A"].iloc[0] == f"{520 / 44:.3f}"
    assert any(t.name.startswith("B: ") for t in out["throughput"].data)


def test_missing_sweep_is_explained(db_path):
    out = analyse(Store(db_path), "999")
    assert out["explanation"].startswith("**Cannot analyse:**") and "no sweep 999" in out["explanation"]


def test_timeline_of_a_stored_run(db_path):
    sweep_id, run_id = store_run_with_timeline(db_path)
    store = Store(db_path)
    out = analyse(store, str(sweep_id))
    assert out["run"] == str(run_id) and out["run_choices"][0][1] == str(run_id)
    fig = timeline_for_run(store, run_id)
    generate = next(t for t in fig.data if t.name == "generate")
    assert len(generate.x) == 4  # 2 calls on each of 2 ranks
    launch = next(t for t in fig.data if t.name == "launch")
    assert list(launch.base) == [0.0, 0.0] and launch.x[1] == pytest.approx(0.7)  # 0.5 s launch + 0.2 s later start
    assert "imbalance 1.053" in fig.layout.title.text  # 2.0 / mean(1.8, 2.0)
    assert "The stored timelines agree" in out["explanation"]


def test_tab_builds_its_own_tab_or_fills_the_open_one(db_path, tmp_path):
    import gradio as gr

    from studio.web.analysis_tab import build_analysis_tab

    store = Store(db_path)
    with gr.Blocks() as own:
        with gr.Tabs():
            tab = build_analysis_tab(store, tmp_path)
    assert isinstance(tab, gr.Tab) and tab.label == "Analysis" and tab.id == "analysis"
    with gr.Blocks() as wrapped:
        with gr.Tabs():
            with gr.Tab("Analysis", id="analysis") as outer:
                assert build_analysis_tab(store, tmp_path) is outer
    for demo in (own, wrapped):
        tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
        assert len(tabs) == 1  # never a tab nested in a tab
        # the tab's own events are not part of the public API (that is /analyse_sweep)
        assert all(d.api_visibility == "private" for d in demo.fns.values())


@pytest.mark.browser
def test_tab_renders_charts_in_chromium(db_path, artifacts, tmp_path, browser):
    sweep_id, _ = store_run_with_timeline(db_path)
    store = Store(db_path)
    with analysis_tab_page(browser, store, tmp_path) as (page, errors):
        page.get_by_role("button", name="Add the reference post's sweeps").click()
        deadline = time.time() + 30
        page.locator("#analysis-sweep input").click()
        while not page.locator("[role=option]", has_text="Reference post: batched").count():
            assert time.time() < deadline, "the reference sweeps never reached the list"
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
            page.locator("#analysis-sweep input").click()
        page.locator("[role=option]", has_text="Reference post: batched").first.click()
        page.get_by_text("Why: the reasoning, the fits and the ceilings").click()  # folded below the answer
        for name in ("throughput", "speedup", "efficiency"):
            page.wait_for_selector(f"#analysis-{name} .main-svg", timeout=60000)
        page.wait_for_function("document.querySelector('#analysis-explanation').innerText"
                               ".includes('work quantisation')", timeout=30000)
        # the answer leads; what a published sweep cannot show is not shown empty
        # the headline shows gradio's "processing" overlay while the tab's other panels fill
        page.wait_for_function("document.querySelector('#analysis-headline').innerText.trim()"
                               ".startsWith('Cause: work quantisation')", timeout=30000)
        for absent in ("#analysis-timeline", "#analysis-pareto", "#grid-x"):
            assert not page.locator(absent).is_visible(), absent
        breaks = page.eval_on_selector_all("#analysis-points th", "els => els.map(e => getComputedStyle(e).wordBreak)")
        assert breaks and set(breaks) == {"normal"}  # "GPU s", "speedu p" no more
        # a measured sweep: the Gantt of its run draws
        page.locator("#analysis-sweep input").click()
        page.locator("[role=option]", has_text=f"#{sweep_id} ").first.click()
        page.wait_for_selector("#analysis-timeline .main-svg", timeout=60000)
        page.wait_for_function("document.querySelectorAll('#analysis-timeline .trace.bars .point').length >= 10",
                               timeout=30000)
        page.screenshot(path=str(artifacts / "analysis-tab.png"), full_page=True)
        page.get_by_role("button", name="Make HTML report").click()
        page.wait_for_selector("#analysis-report a", timeout=30000)
        with page.expect_download(timeout=30000) as download:
            page.locator("#analysis-report a").first.click()
        report = open(download.value.path(), encoding="utf-8").read()
        filename = download.value.suggested_filename
    assert filename == f"sweep-{sweep_id}-report.html"
    assert "Per-rank timeline" in report and "window.PlotlyConfig" in report
    assert not errors


def test_the_tabs_open_on_the_newest_measured_sweep_not_on_published_ones(store):
    from studio.sweeps.reference import ensure_reference_sweeps
    from studio.web import history
    from studio.web.analysis_tab import sweep_menu

    mine = store.create_sweep({"model": "tiny", "mode": "batched", "batch_size": 4}, [1, 2], 1)
    ensure_reference_sweeps(store)  # added later: the highest ids
    choices, opening = sweep_menu(store)
    assert int(choices[0][1]) > mine and opening == str(mine)
    assert history.opening_sweep(store.list_sweeps()) == mine
    # with nothing measured, a published sweep is better than an empty tab
    assert history.opening_sweep([s for s in store.list_sweeps() if s["external"]]) == int(choices[0][1])
