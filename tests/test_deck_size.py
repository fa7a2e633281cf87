"""The deck's size (issue 23 item 6): the file deck inlines plotly.js once; the
Present tab's deck carries none, and the studio's server hands the page one copy
(studio.web.plotly_script). The browser's side is test_present_tab_in_chromium."""

from __future__ import annotations

from studio.reports.deck import deck_html, write_deck
from studio.sweeps.reference import ensure_reference_sweeps


def test_the_file_deck_inlines_plotly_once_and_the_tab_deck_not_at_all(store, tmp_path):
    from plotly.offline import get_plotlyjs

    marker = get_plotlyjs()[:200]  # the library's banner and first lines
    path, analysis = write_deck(store, ensure_reference_sweeps(store)["batched"], tmp_path / "deck.html")
    assert path.read_text().count(marker) == 1
    tab = deck_html(analysis, inline_plotly=False)
    assert tab.count(marker) == 0 and "plotly.js v" not in tab and "postMessage({studio:'plotly?'}" in tab
    assert len(tab.encode()) < 1_000_000 < path.stat().st_size


def test_the_server_answers_plotly_js_once_cacheable():
    import asyncio

    from plotly.offline import get_plotlyjs

    from studio.web.plotly_script import PAGE_JS, PLOTLY_PATH, PlotlyScript

    sent, passed = [], []

    async def downstream(scope, receive, send):
        passed.append(scope["path"])

    async def call(path, method="GET"):
        async def send(message):
            sent.append(message)
        await PlotlyScript(downstream)({"type": "http", "path": path, "method": method}, None, send)

    asyncio.run(call(PLOTLY_PATH))
    asyncio.run(call("/gradio_api/info"))
    start, body = sent
    assert start["status"] == 200 and (b"cache-control", b"public, max-age=31536000, immutable") in start["headers"]
    assert body["body"].decode() == get_plotlyjs() and passed == ["/gradio_api/info"]
    assert PLOTLY_PATH in PAGE_JS and "cdn" not in PAGE_JS.lower()

    class Locked:  # a studio run with --auth: the script goes to the logged-in page only
        auth, cookie_id, tokens = [("u", "p")], "x", {}

    sent.clear()
    asyncio.run(PlotlyScript(downstream)({"type": "http", "path": PLOTLY_PATH, "method": "GET", "app": Locked(),
                                          "headers": []}, None, lambda m: _append(sent, m)))
    assert sent[0]["status"] == 401 and b"log in" in sent[1]["body"]


async def _append(sent, message):
    sent.append(message)
