"""plotly.js served once to the page, for the Present tab's decks.

The file deck (`studio present`) inlines plotly.js (4.8 MB) so that it opens
offline. The Present tab must not resend that per sweep: its deck is built
without plotly.js, and the page fetches the library once from
`PLOTLY_PATH` (a route of the studio's own server, never a CDN: the studio works
offline), keeps the text, and hands it to each deck's iframe by postMessage.
The iframe is sandboxed into an origin of its own, so it can neither read the
page's copy nor share the page's HTTP cache: hence the message.

`PlotlyScript` is an ASGI middleware that answers that one path (to the logged-in
page only, when the studio runs with --auth); `PAGE_JS` is the page's side of the
exchange, run once when the Present tab loads."""

from __future__ import annotations

from functools import lru_cache

import plotly

from studio.web.http_guard import logged_in

PLOTLY_PATH = f"/studio-static/plotly-{plotly.__version__}.min.js"


@lru_cache(maxsize=1)
def plotly_bytes() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


class PlotlyScript:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != PLOTLY_PATH or scope.get("method") not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        app = scope.get("app")
        if getattr(app, "auth", None) and not logged_in(app, scope.get("headers", [])):
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Not authenticated: log in first"})
            return
        body = plotly_bytes()
        # the version is in the path, so the browser may keep it for good
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/javascript; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"public, max-age=31536000, immutable")]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


# the page's side: fetch once, answer only the Present tab's own deck frame
PAGE_JS = """
if (!window.studioPlotlyBridge) {
  window.studioPlotlyBridge = true;
  var plotlySource = null;
  window.addEventListener('message', function (e) {
    var frame = document.getElementById('present-deck');
    if (!frame || e.source !== frame.contentWindow || !e.data || e.data.studio !== 'plotly?') return;
    plotlySource = plotlySource || fetch('%s').then(function (r) {
      if (!r.ok) { plotlySource = null; throw new Error('plotly.js: ' + r.status); }
      return r.text();
    });
    plotlySource.then(function (text) { e.source.postMessage({studio: 'plotly', source: text}, '*'); });
  });
}
""" % PLOTLY_PATH
