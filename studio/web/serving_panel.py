"""The Analysis tab's server panel (issue 26): for a sweep of the server scenario,
latency and TTFT against offered rate per GPU count and layout with the knee marked,
and the sentence naming the highest rate each sustains within the sweep's SLO.
Hidden for offline sweeps."""

from __future__ import annotations

import pandas as pd

from db.serving import server_runs
from db.store import Store
from studio.analysis.serving import curves, sentence
from studio.charts.serving import latency_rate_figure
from studio.sweeps.slo import parse_slo
from studio.web.views import rounded


def server_view(store: Store, sweep_id) -> tuple[str, object | None]:
    """(markdown, figure) for a server sweep; ("", None) for any other."""
    if sweep_id in (None, ""):
        return "", None
    runs = server_runs(store, int(sweep_id))
    if not runs:
        return "", None
    sweep = store.get_sweep(int(sweep_id)) or {}
    slo = parse_slo((sweep.get("settings") or {}).get("slo"))
    found = curves(runs, slo)
    lines = ["#### Server under load"]
    for c in found:
        knee = f"knee at **{c.knee:.3g} req/s**" if c.knee is not None else "no knee within the rates offered"
        best = "" if not slo else (f"; highest rate within the SLO **{c.best_rate:.3g} req/s**"
                                   if c.best_rate is not None else "; no rate offered met the SLO")
        lines.append(f"- {c.name}: {knee}{best}")
    failed = [r for r in runs if r["status"] != "succeeded"]
    if failed:
        lines.append(f"- {len(failed)} load(s) did not succeed: {failed[-1].get('error') or failed[-1]['status']}")
    lines.append(sentence(found, slo))
    return "\n".join(lines), latency_rate_figure(found, slo)


SERVER_COLUMNS = ["run", "GPUs", "layout", "load", "status", "req/s", "tokens/s", "TTFT p50 ms", "TPOT p50 ms",
                  "latency p50 ms", "latency p99 ms", "errors"]


def server_results_table(rows: list[dict]) -> pd.DataFrame:
    """A server sweep's stored loads, as the Run tab lists them: one row per load."""
    data = [[r["id"], r["world_size"], r["layout"], r.get("scenario") or "–",
             r["status"] + (" (client lagged)" if r.get("client_lagged") else ""),
             rounded(r.get("requests_per_second"), 2), rounded(r.get("tokens_per_second"), 1),
             rounded(r.get("ttft_ms_p50"), 1), rounded(r.get("tpot_ms_p50"), 2), rounded(r.get("latency_ms_p50"), 1),
             rounded(r.get("latency_ms_p99"), 1), r.get("errors") or 0] for r in rows]
    return pd.DataFrame(data, columns=SERVER_COLUMNS)


def build_serving_panel(gr, store: Store, sweep_dropdown, private: dict) -> tuple:
    """The panel's components; returns (fn, inputs, outputs) for the tab to chain when it opens."""
    text = gr.Markdown(visible=False, elem_id="analysis-serving-text")
    plot = gr.Plot(label="Latency against offered rate", show_label=False, visible=False,
                   elem_id="analysis-serving")

    def fill(sweep_id):
        markdown, figure = server_view(store, sweep_id)
        return gr.update(value=markdown, visible=bool(markdown)), gr.update(value=figure, visible=figure is not None)

    sweep_dropdown.change(fill, [sweep_dropdown], [text, plot], **private)
    return fill, [sweep_dropdown], [text, plot]
