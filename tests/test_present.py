"""The presentation: the deck's steps as pure functions of the analysis, the
plateau explainer's figure on a hand-computed case, `studio present`, and the
deck opened from a file in Chromium."""

from __future__ import annotations

import json
import re

import pytest

from db.store import Store
from runner.config import RunConfig
from runner.result import RunResult
from studio.analysis.explain import cause_sentence
from studio.analysis.scaling_models import quantisation
from studio.analysis.what_if import what_if_rows
from studio.charts.deck import block_positions, check_explainer_inputs, explainer_figures
from studio.exchange.output_file import OutputError
from studio.reports.deck import deck_html, deck_steps, write_deck
from studio.reports.report import ReportError, load_analysis
from studio.sweeps.reference import ensure_reference_sweeps

# tokens/s per (GPUs, batch size), two repeats each: made up for the test, stored like real runs
GRID = {(1, 2): (10.0, 11.0), (2, 2): (19.0, 20.0), (1, 8): (30.0, 31.0), (2, 8): (50.0, 52.0)}


def store_grid_sweep(store: Store) -> int:
    """A finished grid sweep over GPU count and batch size (16 prompts), stored
    the way the studio stores one, without running a model."""
    base = RunConfig(prompts=["p"] * 16, max_new_tokens=4)
    settings = {**base.settings(), "batch_size": None,
                "axes": {"gpus_per_node": [1, 2], "batch_size": [2, 8]}}
    sweep_id = store.create_sweep(settings, [1, 2], 2, name="grid demo")
    for (gpus, batch), values in GRID.items():
        for repeat, tps in enumerate(values):
            config = RunConfig(prompts=["p"] * 16, max_new_tokens=4, gpus_per_node=gpus, batch_size=batch).to_dict()
            run_id = store.create_run(config, sweep_id=sweep_id, repeat_index=repeat)
            seconds = 64 / tps
            ranks = [{"rank": r, "num_prompts": 16 // gpus, "tokens": 64 // gpus, "seconds": seconds}
                     for r in range(gpus)]
            store.finish_run(run_id, RunResult(status="succeeded", config=config, world_size=gpus, device="cpu",
                                               dtype="float32", tokens=64, raw_tokens=64, seconds=seconds,
                                               tokens_per_second=tps, ranks=ranks))
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id


def figures_of(html: str) -> dict:
    data = re.search(r"<script type='application/json' id='deck-figs'>(.*?)</script>", html, re.S).group(1)
    return json.loads(data.replace("<\\/", "</"))


def traces(figures) -> list:
    return [trace for fig in figures for trace in fig.data]


def test_explainer_blocks_and_ceiling_by_hand():
    # 100 prompts, batch 16: ceil(ceil(100/n)/16) = 7, 4, 3, 2, 2 rounds on 1..5 GPUs
    data = traces(explainer_figures(100, 16, 5))
    busiest = next(t for t in data if t.name.startswith("rounds on the busiest rank"))
    assert len(busiest.x) == 7 + 2 * 4 + 3 * 3 + 4 * 2 + 5 * 2  # every rank is a busiest one here
    assert not [t for t in data if t.name == "rounds on the other ranks"]
    ceiling = next(t for t in data if t.name == "quantisation ceiling")
    assert list(ceiling.x) == [1, 2, 3, 4, 5]
    assert list(ceiling.y) == pytest.approx([1, 7 / 4, 7 / 3, 7 / 2, 7 / 2])
    assert [c[0] for c in ceiling.customdata] == [7, 4, 3, 2, 2]
    # 10 prompts on 3 GPUs, batch 2: ranks get 4, 3, 3 prompts -> 2, 2, 2 rounds; on 4: 3,3,2,2 -> 2,2,1,1
    blocks = block_positions(quantisation(10, 2, [4], base=1))
    assert [(b["rank"], b["busiest"]) for b in blocks if b["round"] == 2] == [(0, True), (1, True)]
    assert sum(1 for b in blocks if not b["busiest"]) == 2


def test_explainer_draws_the_measured_points_in_tokens_per_second(store):
    analysis = load_analysis(store, ensure_reference_sweeps(store)["batched"])
    data = traces(explainer_figures(100, 16, 8, analysis))
    measured = next(t for t in data if t.name == "measured median (this sweep)")
    assert list(measured.x) == [1, 2, 3, 4, 5]
    base = analysis["points"][0]["throughput"]["median"]
    ceiling = next(t for t in data if t.name == "quantisation ceiling")
    assert list(ceiling.y)[:8] == pytest.approx([base * s for s in (1, 7 / 4, 7 / 3, 3.5, 3.5, 3.5, 7, 7)])


@pytest.mark.parametrize("args, message", [((100, 0, 4), "batch size must be at least 1"),
                                           ((100, 16, 17), "GPU count must be between 1 and 16"),
                                           (("many", 16, 4), "prompts must be a whole number"),
                                           ((100, 2.5, 4), "batch size must be a whole number")])
def test_explainer_refuses_bad_settings_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        check_explainer_inputs(*args)


def test_deck_of_the_reference_batched_sweep(store):
    analysis = load_analysis(store, ensure_reference_sweeps(store)["batched"])
    steps = deck_steps(analysis)
    assert [s["id"] for s in steps] == ["settings", *(f"throughput-{n}" for n in range(1, 6)), "rounds", "cause",
                                        "whatif", "cost"]
    growth = [s["figures"][0] for s in steps if s["id"].startswith("throughput-")]
    assert [len(f.data[1].x) for f in growth] == [1, 2, 3, 4, 5]  # one more count each step
    assert all(f.data[0].name.startswith("ideal") and list(f.data[0].x) == [1, 5] for f in growth)
    rounds = next(s for s in steps if s["id"] == "rounds")
    assert "Going from 4 to 5 GPUs leaves the busiest rank with 2 rounds" in rounds["html"]
    assert cause_sentence(analysis).startswith("Cause: work quantisation/imbalance: seconds per round stay")
    whatif = next(s for s in steps if s["id"] == "whatif")
    rows = what_if_rows(analysis)
    assert rows == analysis["what_if_rows"]  # the deck shows the rows the report and the tab carry
    assert [r["gpus"] for r in rows] == [1, 2, 3, 4, 5, 6, 10] and [r["rounds"] for r in rows][-2:] == [2, 1]
    base = analysis["points"][0]["throughput"]["median"]
    assert rows[-1]["ceiling"] == pytest.approx(base * 7)  # 7 rounds on 1 GPU, 1 round on 10
    for r in rows[-2:]:
        assert f"<tr><td>{r['gpus']}</td><td>{r['rounds']}</td><td>{r['ceiling']:.0f}</td>" in whatif["html"]
    assert "Not measured" in whatif["html"] and "held out" in whatif["html"].lower()
    assert {t.name for t in whatif["figures"][0].data} >= {"ceiling: what the rounds allow", "measured median"}
    html = deck_html(analysis)
    assert html.count("<section class='step'") == len(steps)
    assert html.count("Plotly=") <= 1 and "cdn.plot.ly" not in html.split("<script>")[0]
    assert "https://" not in html.split("</head>")[1].split("deck-figs")[0]  # nothing to fetch from the body
    assert len(figures_of(html)) == sum(len(s["figures"]) for s in steps)


def test_deck_of_a_grid_sweep_compares_the_batch_sizes(store):
    sweep_id = store_grid_sweep(store)
    analysis = load_analysis(store, sweep_id)
    assert len(analysis["settings_available"]) == 2
    steps = deck_steps(analysis)
    assert steps[-1]["id"] == "grid" and steps[-1]["title"] == "GPU count against batch"
    heat = steps[-1]["figures"][0].data[0]
    assert list(heat.x) == ["1", "2"] and list(heat.y) == ["2", "8"]
    assert [list(row) for row in heat.z] == [[10.5, 19.5], [30.5, 51.0]]  # medians of the two repeats
    assert "grid over" in steps[0]["html"]
    assert len(figures_of(deck_html(analysis))) == sum(len(s["figures"]) for s in steps)


def test_a_sweep_without_a_finished_run_cannot_be_presented(store):
    sweep_id = store.create_sweep(RunConfig(prompts=["a"]).settings(), [1], 1, name="empty")
    with pytest.raises(ReportError, match="no succeeded run, so there is nothing to present"):
        deck_steps(load_analysis(store, sweep_id))


def test_write_deck_refuses_a_missing_folder(store, tmp_path):
    sweep_id = ensure_reference_sweeps(store)["batched"]
    with pytest.raises(OutputError, match="does not exist; create it or pick another --output"):
        write_deck(store, sweep_id, tmp_path / "nope" / "deck.html")
    with pytest.raises(OutputError, match="is a folder"):
        write_deck(store, sweep_id, tmp_path)


def test_cli_present(db_path, tmp_path, cli):
    out = tmp_path / "deck.html"
    done = cli("present", "ref:batched", "--output", str(out), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "Cause: work quantisation" in done.stdout
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    for args, message in ((["ref:nope"], "is not a reference sweep"), (["abc"], "is not a sweep id"),
                          (["999"], "there is no sweep 999"),
                          (["ref:batched", "--output", str(tmp_path / "x" / "d.html")], "does not exist")):
        bad = cli("present", *args, "--db", str(db_path))
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("which", ["reference", "grid"])
def test_deck_renders_every_chart_offline_in_chromium(store, tmp_path, artifacts, which):
    from playwright.sync_api import sync_playwright

    sweep_id = ensure_reference_sweeps(store)["batched"] if which == "reference" else store_grid_sweep(store)
    path, analysis = write_deck(store, sweep_id, tmp_path / "deck.html")
    steps = deck_steps(analysis)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1920, "height": 1080})  # a 1080p projector
        errors, requests = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(path.as_uri())
        for i, step in enumerate(steps):
            page.wait_for_function(f"document.body.dataset.step === '{i}'", timeout=10000)
            assert page.locator("#counter").inner_text() == f"{i + 1} / {len(steps)}"
            for j in range(len(step["figures"])):
                fig = f"#step-{i} #fig-{step['id']}-{j}"
                # drawn, not just framed: at least one trace (line, bar or heatmap) inside the chart
                page.wait_for_function(f"document.querySelectorAll('{fig} .scatterlayer .trace, {fig} .barlayer "
                                       f".trace, {fig} .hm').length > 0", timeout=20000)
            if step["figures"]:
                # ticks read from across a room: at least 18 px as drawn
                sizes = page.eval_on_selector_all(f"#step-{i} .xtick text, #step-{i} .ytick text",
                                                  "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
                assert sizes and min(sizes) >= 18, (step["id"], sizes)
            assert page.locator("#counter").bounding_box()["height"] < 30  # "1 / 9" on one line
            if step["id"] in ("rounds", "grid"):
                page.screenshot(path=str(artifacts / f"present-deck-{which}-{step['id']}.png"))
            if which == "reference" and step["id"] == "throughput-4":
                page.screenshot(path=str(artifacts / "present-deck.png"))
            page.keyboard.press("Space" if i % 2 else "ArrowRight")
        page.keyboard.press("ArrowLeft")
        assert page.locator("#counter").inner_text() == f"{len(steps) - 1} / {len(steps)}"
        page.mouse.click(960, 60)  # a click off the charts advances
        assert page.locator("#counter").inner_text() == f"{len(steps)} / {len(steps)}"
        # on a phone the footer keeps its counter whole, on one line
        page.set_viewport_size({"width": 390, "height": 844})
        box = page.locator("#counter").bounding_box()
        assert box["height"] < 30 and box["x"] + box["width"] <= 390
        assert page.evaluate("(() => { const c = document.querySelector('#counter'); "
                             "return c.scrollWidth <= c.clientWidth; })()")
        browser.close()
    assert not errors and not requests, (errors, requests)


def test_present_tab_handlers(store):
    from studio.web.present_tab import PLACEHOLDER, deck_frame, explainer_plot, explainer_start

    assert deck_frame(store, None) == (PLACEHOLDER, "", {})
    frame, status, measured = deck_frame(store, "999")
    assert frame == PLACEHOLDER and "Cannot present sweep 999: there is no sweep 999" in status
    sweep_id = ensure_reference_sweeps(store)["batched"]
    frame, status, measured = deck_frame(store, str(sweep_id))
    assert frame.startswith("<iframe id='present-deck'") and "srcdoc=\"&lt;!doctype html&gt;" in frame
    # its own origin: scripts run, but reach neither the page nor the API (issue 27 item 9)
    assert "sandbox='allow-scripts'" in frame and "allow-same-origin" not in frame
    # plotly.js stays with the page (issue 23 item 6): the frame carries the deck's figures only
    assert "plotly.js v" not in frame and len(frame.encode()) < 1_000_000
    assert explainer_start(measured) == (100, 16, 6)  # the sweep's settings, one count past its largest
    names = {t.name for t in traces(explainer_plot(measured, 100, 16, 6))}
    assert "measured median (this sweep)" in names
    # measured at batch 16, so not drawn against batch 8's ceiling
    assert "measured median (this sweep)" not in {t.name for t in traces(explainer_plot(measured, 100, 8, 6))}


def test_present_tab_builds_with_private_events_only(store):
    import gradio as gr

    from studio.web.present_tab import build_present_tab

    with gr.Blocks() as own:
        with gr.Tabs():
            tab = build_present_tab(store)
    assert isinstance(tab, gr.Tab) and tab.label == "Present" and tab.id == "present"
    with gr.Blocks() as wrapped:
        with gr.Tabs():
            with gr.Tab("Present", id="present") as outer:
                assert build_present_tab(store) is outer
    for demo in (own, wrapped):
        assert len([b for b in demo.blocks.values() if isinstance(b, gr.Tab)]) == 1
        assert demo.fns and all(d.api_visibility == "private" for d in demo.fns.values())


@pytest.mark.browser
@pytest.mark.slow
def test_present_tab_in_chromium(store, artifacts):
    import gradio as gr
    from conftest import find_free_port
    from playwright.sync_api import sync_playwright
    from starlette.middleware import Middleware

    from studio.web.plotly_script import PLOTLY_PATH, PlotlyScript
    from studio.web.present_tab import build_present_tab

    references = ensure_reference_sweeps(store)
    sweep_id = references["batched"]
    with gr.Blocks() as demo:
        with gr.Tab("Runs"):
            gr.Markdown("another tab")
        build_present_tab(store)
    port = find_free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True,
                app_kwargs={"middleware": [Middleware(PlotlyScript)]})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            plotly_fetches = []
            page.on("request", lambda r: plotly_fetches.append(r.url.split(str(port))[1]) if "studio-static" in r.url else None)
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Present").click()
            page.wait_for_selector("#present-explainer .main-svg", timeout=60000)
            page.locator("#present-sweep input").click()
            page.locator("[role=option]", has_text=f"#{sweep_id} ").first.click()
            page.wait_for_selector("#present-deck", timeout=60000)
            deck = page.frame_locator("#present-deck")
            deck.locator("#counter").wait_for(timeout=30000)
            assert deck.locator("#counter").inner_text() == "1 / 10"  # with the cost step
            deck.locator("#step-0 h1").click()  # a click off the charts advances, and gives the deck the keys
            deck.locator("#step-1 .fig .scatterlayer .trace").first.wait_for(timeout=30000)
            page.keyboard.press("ArrowRight")
            deck.locator("#step-2 .fig .scatterlayer .trace").first.wait_for(timeout=30000)
            assert deck.locator("#counter").inner_text() == "3 / 10"
            # the explainer follows the sweep: 100 prompts, batch 16, up to 6 GPUs, measured points on top
            page.wait_for_function("document.querySelector('#present-explainer').innerText"
                                   ".includes('measured median (this sweep)')", timeout=30000)
            page.screenshot(path=str(artifacts / "present-tab.png"), full_page=True)
            # batch 8 -> 13 rounds on 1 GPU; the ceiling's title names the new settings
            slider = page.locator("#explain-batch input[type=number]")
            slider.fill("8")
            slider.press("Enter")
            page.wait_for_function("document.querySelector('#present-explainer').innerText"
                                   ".includes('100 prompts, batch 8')", timeout=30000)
            assert page.locator("#present-explainer .barlayer .point").count() == sum(
                sum(q["rounds_per_rank"]) for q in quantisation(100, 8, range(1, 7), base=1))
            page.screenshot(path=str(artifacts / "present-explainer.png"), full_page=True)
            # a second sweep: every byte the browser receives from picking it to its first chart drawn
            cdp = page.context.new_cdp_session(page)
            received = []
            cdp.on("Network.dataReceived", lambda e: received.append(e["dataLength"]))
            cdp.send("Network.enable")
            page.locator("#present-sweep input").click()
            page.locator("[role=option]", has_text=f"#{references['simple']} ").first.click()
            page.wait_for_function(f"document.querySelector('#present-deck').title.endsWith(' {references['simple']}')",
                                   timeout=60000)
            deck = page.frame_locator("#present-deck")
            deck.locator("#counter").wait_for(timeout=30000)
            deck.locator("#step-0 h1").click()
            deck.locator("#step-1 .fig .scatterlayer .trace").first.wait_for(timeout=30000)
            second = sum(received)
            print(f"second sweep's payload: {second} bytes")
            assert 10_000 < second < 1_000_000, second
            assert plotly_fetches == [PLOTLY_PATH], plotly_fetches  # plotly.js crossed the wire once, for both decks
            browser.close()
        assert not errors, errors
    finally:
        demo.close()


def test_the_page_has_the_present_tab(db_path):
    import gradio as gr

    from studio.sweeps.supervisor import Supervisor
    from studio.web.app import build_app

    supervisor = Supervisor(db_path)
    try:
        app = build_app(supervisor, db_path)
    finally:
        supervisor.shutdown()
    tabs = [b for b in app.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs].count("Present") == 1
    assert any(b.elem_id == "present-explainer" for b in app.blocks.values() if hasattr(b, "elem_id"))


def test_the_deck_is_sized_for_a_projector_and_needs_no_emoji_font(store):
    sweep_id = ensure_reference_sweeps(store)["batched"]
    html = deck_html(load_analysis(store, sweep_id))
    for fig in figures_of(html).values():
        layout = fig["layout"]
        axes = [v for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]
        assert axes and all(a["tickfont"]["size"] >= 18 for a in axes)
        assert layout["font"]["size"] >= 18
    visible = html.split("<script>", 1)[0] + html.rsplit("</script></head>", 1)[1].split("<script type=", 1)[0]
    assert not [c for c in visible if ord(c) >= 0x1F000], "a glyph that needs an emoji font"


def test_a_contention_slide_does_not_offer_the_quantisation_remedy():
    from db.rows import RunRow
    from studio.analysis.analyse import analyse_sweep

    # 100 prompts, batch 16: the rounds allow 3.5x at 4 GPUs; the runs got 1.3x, each round much slower
    runs = [RunRow({"id": n, "status": "succeeded", "num_gpus": n, "num_nodes": 1, "world_size": n, "repeat_index": 0,
                    "tokens_per_second": tps, "seconds": 10000 / tps, "num_prompts": 100, "batch_size": 16})
            for n, tps in ((1, 520.0), (2, 600.0), (3, 650.0), (4, 680.0), (5, 700.0))]
    sweep = {"id": 1, "name": "", "mode": "batched", "batch_size": 16, "num_prompts": 100,
             "settings": {"mode": "batched", "batch_size": 16, "num_prompts": 100}, "runs": runs}
    analysis = analyse_sweep(sweep)
    assert analysis["diagnosis"]["verdict"] == "contention"
    assert "Quantisation is not what limits this sweep; still: To remove" in analysis["explanation"]
    cause = next(s for s in deck_steps(analysis) if s["id"] == "cause")
    assert "To remove" not in cause["html"] and "batch size" not in cause["html"]

