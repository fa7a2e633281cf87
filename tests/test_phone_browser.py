"""The Run tab on a phone (390 × 844, Chromium): every tab reachable by name, the
upload box legible, and a sweep's progress no wider than the screen."""

from __future__ import annotations

import pytest
from live_server import live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_the_run_tab_on_a_phone(db_path, free_port, tmp_path, browser, artifacts):
    with live_server(db_path, free_port, tmp_path / "serve.log") as (url, _):
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.wait_for_selector("#run-button", timeout=30_000)
        page.wait_for_timeout(1000)
        # before any control is touched, the grid line counts the runs the ticked GPU counts make
        ticked = page.locator("#gpu-counts input[type=checkbox]:checked").count()
        assert ticked >= 1 and f"= {ticked} run(s)" in page.locator("#grid-info").inner_text()
        for name in ("Run", "History", "Compare", "Analysis", "Present"):
            assert page.get_by_role("tab", name=name).is_visible(), f"the {name} tab is hidden"
        page.get_by_text("Glossary: rounds, knee").click()  # one click from every tab
        page.locator("#glossary").get_by_text("Time to first token").wait_for(timeout=10_000)
        label = page.locator("#prompt-file").get_by_text("…or upload a file").bounding_box()
        # the words themselves, not the drop zone around them
        drop = page.evaluate("""() => {
            const walk = document.createTreeWalker(document.querySelector('#prompt-file'), NodeFilter.SHOW_TEXT);
            while (walk.nextNode()) if (walk.currentNode.textContent.includes('Drop File Here')) {
                const range = document.createRange(); range.selectNodeContents(walk.currentNode);
                const r = range.getBoundingClientRect();
                return {x: r.x, y: r.y, width: r.width, height: r.height};
            }
        }""")
        assert not overlaps(label, drop), (label, drop)

        # the explainer's titles and axis titles each clear of the others and on the screen
        page.get_by_role("tab", name="Present").click()
        page.locator("#explain-ceiling .main-svg").first.wait_for(timeout=30_000)
        texts = page.eval_on_selector_all(
            "#present-explainer text.gtitle, #present-explainer text[class$='title'],"
            " #present-explainer text.annotation-text",
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return {text: e.textContent, x: r.x, y: r.y, width: r.width, height: r.height}; })")
        assert len(texts) >= 6, texts
        clashes = [(a["text"], b["text"]) for i, a in enumerate(texts) for b in texts[i + 1:] if overlaps(a, b)]
        assert not clashes, clashes
        assert all(t["x"] >= 0 and t["x"] + t["width"] <= 390 for t in texts), texts
        page.screenshot(path=str(artifacts / "phone-explainer.png"), full_page=True)
        page.get_by_role("tab", name="Run").click()

        page.locator("#prompts textarea").fill("Call me Ishmael.\nThe King is dead.")
        page.locator("#max-new-tokens").locator("input, textarea").first.fill("2")
        box = page.locator("#gpu-counts").get_by_role("checkbox", name="2", exact=True)
        if box.is_checked():
            box.uncheck()
        page.locator("#grid-info").get_by_text("1 run(s)").wait_for(timeout=15_000)
        page.locator("#run-button").click()
        page.locator("#progress .studio-run[data-status='succeeded']").first.wait_for(timeout=120_000)
        widths = page.eval_on_selector_all(
            "#progress .studio-run > *", "els => els.map(e => e.getBoundingClientRect().right)")
        assert widths and max(widths) <= 390, widths
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "phone-run.png"), full_page=True)
        assert not errors, errors
