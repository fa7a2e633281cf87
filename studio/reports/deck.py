"""A sweep replayed as a presentation: the analysis dict in, one self-contained
HTML deck out (plotly.js inlined once, no network needed to open it). In the web
studio's Present tab the deck carries no plotly.js: it asks the page for the
copy the page fetched once (see `studio.web.plotly_script`).

Steps: the settings; the throughput growing one GPU count at a time against the
ideal line; the rounds per rank as blocks; the cause in one sentence; what the
models say about the next counts (labelled as extrapolation); and, for a grid
sweep, the comparison over its other setting. Shared by `studio present` and the
web studio's Present tab.

Charts are drawn when their step is first shown, not at load: plotly sizes a
chart from its container, and a hidden step has none."""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from studio.analysis.cost import COST_HEADERS, cost_table_rows
from studio.analysis.explain import cause_sentence, explanation_line
from studio.analysis.predict import describe_held_out
from studio.analysis.stats import varied_settings
from studio.analysis.what_if import whole_text
from studio.charts import analysis as figs
from studio.charts import deck as pfigs
from studio.charts import grid as grid_figures
from studio.exchange.output_file import check_output, write_output
from studio.reports.report import ReportError, load_analysis


def _esc(value) -> str:
    return html.escape("–" if value in (None, "") else str(value))


def _kv(rows: list[tuple[str, object]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows) \
        + "</table>"


def _settings_step(analysis: dict) -> dict:
    sweep, s = analysis["sweep"], analysis["settings"]
    title = f"Sweep {sweep['id']}" + (f": {sweep['name']}" if sweep.get("name") else "")
    rows = [("model", s.get("model")), ("mode", s.get("mode")),
            ("batch size", analysis.get("batch_size_effective") or s.get("batch_size")),
            ("prompts", s.get("num_prompts")), ("new tokens per prompt", s.get("max_new_tokens")),
            ("GPU counts", ", ".join(map(str, analysis["counts"]))), ("repeats", sweep.get("repeats")),
            ("device", analysis.get("device") or s.get("device")), ("hardware", s.get("hardware")),
            ("runs used", analysis["runs_used"])]
    if len(analysis.get("settings_available") or []) > 1:
        varied = _varied(analysis)
        rows.append(("grid over", ", ".join(grid_figures.AXIS_TITLES[a] for a in varied)))
        rows.append(("scaling shown for", ", ".join(f"{grid_figures.AXIS_TITLES[a]} {analysis['setting'][a]}"
                                                    for a in varied)))
    body = _kv([r for r in rows if r[1] not in (None, "")])
    if sweep.get("external"):
        body += f"<p class='note'>Published figures, not measured here: {_esc(s.get('post') or sweep.get('source'))}</p>"
    body += "<p class='hint'>→ / space / click: next · ←: back · F: full screen</p>"
    return {"id": "settings", "title": title, "html": body, "figures": []}


def _growth_steps(analysis: dict) -> list[dict]:
    points = analysis["points"]
    steps = []
    for p in points:
        ideal = p["gpus"] / points[0]["gpus"]
        text = (f"{p['gpus']} GPU(s): median {p['throughput']['median']:.1f} tokens/s over {p['throughput']['n']} "
                f"repeat(s), {p['speedup']:.2f}x the {points[0]['gpus']}-GPU throughput where ideal is {ideal:.0f}x "
                f"(efficiency {p['efficiency']:.0%}).")
        steps.append({"id": f"throughput-{p['gpus']}", "title": "Throughput, one GPU count at a time",
                      "html": f"<p>{_esc(text)}</p>", "figures": [pfigs.throughput_until(analysis, p["gpus"])]})
    return steps


def _rounds_step(analysis: dict) -> dict | None:
    rows = pfigs.measured_rows(analysis)
    if not rows:
        return None
    text = explanation_line(analysis["explanation"], "Going from") or (
        "Rounds on the busiest rank: " + ", ".join(f"{r['gpus']} GPU(s) {r['rounds']}" for r in rows) + ".")
    return {"id": "rounds", "title": "Rounds per rank: where the time goes", "html": f"<p>{_esc(text)}</p>",
            "figures": [pfigs.rounds_blocks_figure(rows, "Each block is one generate call; the tallest column "
                                                         "sets the run's time")]}


def _cause_step(analysis: dict) -> dict:
    # the remedy for quantisation belongs on the slide only where quantisation is the cause
    verdict = (analysis.get("diagnosis") or {}).get("verdict")
    prefixes = ("Predicted speedup", "Going from") + (("To remove",) if verdict in ("quantisation", "both") else ())
    detail = [line for line in analysis["explanation"].splitlines() if line.startswith(prefixes)]
    body = f"<p class='cause'>{_esc(cause_sentence(analysis))}</p>" + "".join(
        f"<p class='small'>{_esc(line)}</p>" for line in detail)
    return {"id": "cause", "title": "The cause", "html": body, "figures": [figs.speedup_figure(analysis)]}


def _whatif_step(analysis: dict) -> dict | None:
    rows = [r for r in analysis.get("what_if_rows") or [] if r["measured"] is None]
    if not rows:
        return None

    table = ("<table><tr><th>GPUs</th><th>rounds on the busiest rank</th><th>ceiling, tokens/s</th>"
             "<th>predicted, tokens/s</th><th>interval</th></tr>" + "".join(
                 f"<tr><td>{r['gpus']}</td><td>{whole_text(r['rounds'])}</td><td>{whole_text(r['ceiling'])}</td>"
                 f"<td>{whole_text(r['predicted'])}</td><td>{whole_text(r['low'])}–{whole_text(r['high'])}</td></tr>"
                 for r in rows)
             + "</table>")
    what_if = analysis.get("what_if") or {}
    trust = (describe_held_out(what_if["held_out"]) if what_if.get("held_out")
             else what_if.get("error") or "no prediction")
    note = ("<p class='note'>Not measured. The ceiling is what the rounds allow if every round took as long as at "
            f"the smallest count ({analysis['counts'][0]} GPU(s)); the prediction also models the time per round. "
            f"{_esc(trust[0].upper() + trust[1:])}.</p>")
    return {"id": "whatif", "title": "What if: the next GPU counts", "html": table + note,
            "figures": [pfigs.whatif_figure(analysis)]}


def _varied(analysis: dict) -> list[str]:
    return varied_settings(analysis.get("settings_available") or [])


def _grid_step(analysis: dict) -> dict | None:
    varied = _varied(analysis)
    if len(analysis.get("settings_available") or []) < 2 or not varied:
        return None
    runs = list((analysis.get("_runs") or {}).values())
    second = varied[0]
    name = grid_figures.AXIS_TITLES[second]
    return {"id": "grid", "title": f"GPU count against {name}",
            "html": f"<p>The same sweep over every {_esc(name)} it ran: median tokens/s per cell.</p>",
            "figures": [grid_figures.heatmap_figure(runs, "gpus", second),
                        grid_figures.lines_figure(runs, "gpus", second,
                                                  facet=varied[1] if len(varied) > 1 else None)]}


def _cost_step(analysis: dict) -> dict | None:
    cost = analysis.get("cost") or {}
    if not cost.get("rows"):
        return None
    table = ("<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in COST_HEADERS) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in cost_table_rows(cost)) + "</table>")
    return {"id": "cost", "title": "What it costs", "html": f"<p>{_esc(cost['text'])}</p>{table}"
            "<p class='small'>Every GPU of a run is paid for its whole time. Prices marked example are "
            "placeholders, not market data: give yours with --price or in the Analysis tab.</p>", "figures": []}


def deck_steps(analysis: dict) -> list[dict]:
    """The deck's steps, in order: id, title, body HTML and the figures it draws."""
    if not analysis.get("points"):
        raise ReportError(f"sweep {analysis['sweep']['id']} has no succeeded run, so there is nothing to present; "
                          "run it (or pick a finished sweep) first")
    steps = [_settings_step(analysis), *_growth_steps(analysis), _rounds_step(analysis), _cause_step(analysis),
             _whatif_step(analysis), _cost_step(analysis), _grid_step(analysis)]
    return [s for s in steps if s is not None]


CSS = """
html,body{margin:0;height:100%;background:#fff;color:#222;font-family:system-ui,-apple-system,Segoe UI,sans-serif}
.step{display:none;box-sizing:border-box;height:100vh;padding:18px 32px 44px;flex-direction:column}
.step.on{display:flex}.step h1{font-size:1.6em;margin:0 0 8px}.figs{flex:1;display:flex;gap:12px;min-height:0}
.fig{flex:1;min-width:0;min-height:300px}p{margin:4px 0;font-size:1.05em}.cause{font-size:1.5em;
font-weight:600;color:#1f4e9c;margin:10px 0}.small{font-size:.9em;color:#444}.note{color:#8a4b00}
.hint{color:#777;margin-top:18px}table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ddd;
padding:4px 10px;text-align:left}.kv th{background:#f3f3f3;width:220px}.kv{font-size:1.15em}
#bar{position:fixed;bottom:0;left:0;right:0;height:34px;display:flex;align-items:center;gap:12px;
padding:0 16px;background:#f4f7fb;border-top:1px solid #dde;font-size:.95em}#bar button{font-size:1em}
#counter{font-variant-numeric:tabular-nums;font-weight:600;white-space:nowrap;flex-shrink:0}
#bar span{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:0}
@media (max-width:600px){#bar span:last-child{display:none}}
"""

SCRIPT = """
function startDeck(){
  var steps=document.querySelectorAll('.step'), figs=JSON.parse(document.getElementById('deck-figs').textContent);
  var drawn={}, at=0;
  function draw(i){
    steps[i].querySelectorAll('.fig').forEach(function(div){
      if(drawn[div.id]){Plotly.Plots.resize(div);return;}
      var f=figs[div.id]; drawn[div.id]=true;
      Plotly.newPlot(div,f.data,f.layout,{displaylogo:false,responsive:true});
    });
  }
  function show(i){
    at=Math.max(0,Math.min(steps.length-1,i));
    steps.forEach(function(s,j){s.classList.toggle('on',j===at);});
    document.getElementById('counter').textContent=(at+1)+' / '+steps.length;
    document.getElementById('title').textContent=steps[at].dataset.title;
    document.body.dataset.step=at; draw(at);
  }
  window.deck={show:show,next:function(){show(at+1);},prev:function(){show(at-1);},count:steps.length};
  document.addEventListener('keydown',function(e){
    if(['ArrowRight','ArrowDown','PageDown',' '].indexOf(e.key)>=0){e.preventDefault();show(at+1);}
    else if(['ArrowLeft','ArrowUp','PageUp','Backspace'].indexOf(e.key)>=0){e.preventDefault();show(at-1);}
    else if(e.key==='Home'){show(0);}else if(e.key==='End'){show(steps.length-1);}
    else if(e.key==='f'||e.key==='F'){if(document.fullscreenElement){document.exitFullscreen();}
      else if(document.documentElement.requestFullscreen){document.documentElement.requestFullscreen();}}
  });
  // a click on a chart is for the chart (zoom, hover); elsewhere it advances
  document.addEventListener('click',function(e){
    if(e.target.closest('.fig')||e.target.closest('#bar'))return; show(at+1);
  });
  document.getElementById('prev').onclick=function(){show(at-1);};
  document.getElementById('next').onclick=function(){show(at+1);};
  show(0);
}
"""

# In the Present tab (an iframe sandboxed into an origin of its own) plotly.js comes from the page: the deck
# posts "plotly?" to its parent, the page answers with the source it fetched once, and the deck runs it.
BORROW_PLOTLY = """
window.addEventListener('message',function(e){
  if(e.source!==window.parent||!e.data||e.data.studio!=='plotly'||window.Plotly)return;
  var s=document.createElement('script'); s.textContent=e.data.source; document.head.appendChild(s); startDeck();
});
window.parent.postMessage({studio:'plotly?'},'*');
"""


# Read from across a room off a 1080p projector: the report's 11-12 px ticks are not.
DECK_FONT = 20
DECK_TITLE_FONT = 24


def projector_fonts(layout: dict) -> dict:
    """A figure layout's fonts sized for the deck: ticks, axis titles, legend, title."""
    layout["font"] = {**(layout.get("font") or {}), "size": DECK_FONT}
    for key in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        axis = layout[key]
        axis["tickfont"] = {**(axis.get("tickfont") or {}), "size": DECK_FONT}
        title = axis.get("title")
        if isinstance(title, dict):
            title["font"] = {**(title.get("font") or {}), "size": DECK_FONT}
    layout["legend"] = {**(layout.get("legend") or {}), "font": {"size": DECK_FONT - 2}}
    if isinstance(layout.get("title"), dict):
        layout["title"]["font"] = {**(layout["title"].get("font") or {}), "size": DECK_TITLE_FONT}
    for note in layout.get("annotations") or []:
        note["font"] = {**(note.get("font") or {}), "size": max(DECK_FONT - 2, (note.get("font") or {}).get("size") or 0)}
    return layout


def deck_html(analysis: dict, *, inline_plotly: bool = True) -> str:
    """The whole deck as one HTML page: plotly.js inlined once, or (inline_plotly=False,
    the Present tab) borrowed from the page that holds the deck's iframe."""
    steps = deck_steps(analysis)
    sweep = analysis["sweep"]
    figs, sections = {}, []
    for i, step in enumerate(steps):
        divs = []
        for j, fig in enumerate(step["figures"]):
            div_id = f"fig-{step['id']}-{j}"
            figs[div_id] = json.loads(pio.to_json(fig, validate=False))
            # the chart fills its step (full window) instead of the report's fixed height
            figs[div_id]["layout"].pop("height", None)
            figs[div_id]["layout"]["autosize"] = True
            projector_fonts(figs[div_id]["layout"])
            divs.append(f"<div class='fig' id='{div_id}'></div>")
        sections.append(f"<section class='step' id='step-{i}' data-id='{step['id']}' data-title='{_esc(step['title'])}'>"
                        f"<h1>{_esc(step['title'])}</h1>{step['html']}<div class='figs'>{''.join(divs)}</div>"
                        "</section>")
    # "</" inside the JSON would end the script element early
    data = json.dumps(figs).replace("</", "<\\/")
    title = f"Scaling Studio · sweep {sweep['id']}" + (f" · {sweep['name']}" if sweep.get("name") else "")
    return "\n".join([
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{CSS}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>" if inline_plotly else "</head><body>", *sections,
        "<div id='bar'><button id='prev' title='back (←)'>◀</button><span id='counter'></span>"
        "<button id='next' title='next (→ or space)'>▶</button><span id='title'></span>"
        f"<span style='margin-left:auto;color:#777'>{_esc(title)}</span></div>",
        f"<script type='application/json' id='deck-figs'>{data}</script>",
        f"<script>{SCRIPT}{'startDeck();' if inline_plotly else BORROW_PLOTLY}</script></body></html>"])


def write_deck(store, sweep_id: int, output: str | Path | None = None, *, force: bool = False,
               price: float | None = None) -> tuple[Path, dict]:
    """Analyse a stored sweep and write its deck, costed at `price` per GPU-hour (else the
    sweep's kept prices, else the examples); returns the file and the analysis."""
    path = check_output(Path(output) if output else Path(f"sweep-{sweep_id}-deck.html"), force=force)
    analysis = load_analysis(store, sweep_id, price=price)
    path = write_output(path, deck_html(analysis), force=force)
    return path, analysis
