"""The Analysis tab's Recommend panel: `studio.analysis.recommend.recommend` on the
sweep shown (and the B sweep, if one is picked), its sentence and its candidates."""

from __future__ import annotations

from db.store import Store
from runner.config import ConfigError, whole
from studio.analysis.cost import money, parse_price
from studio.analysis.recommend import recommend_stored
from studio.sweeps.slo import parse_slo

HEADERS = ["", "kind", "sweep", "GPUs", "layout", "batch", "tokens/s", "interval", "$ per M tokens", "TTFT p99",
           "TPOT p99", "meets SLO", "runs"]


def recommend_view(store: Store, sweep_id, compare_id, slo_text, price_text, max_gpus_text) -> str:
    """The answer as markdown; a ConfigError names the bad value."""
    ids = [int(s) for s in (sweep_id, compare_id) if s not in (None, "")]
    if not ids:
        return "Pick a sweep first."
    slo = parse_slo(slo_text)
    if slo is None:
        raise ConfigError("slo", "give the latency limits to meet: ttft=MS,tpot=MS (e.g. ttft=2000,tpot=200)")
    max_gpus = whole("max_gpus", max_gpus_text, 1, 1024, example="8") if str(max_gpus_text or "").strip() else None
    answer = recommend_stored(store, ids, slo, parse_price(price_text), None, max_gpus)
    rows = []
    for c in answer["candidates"]:
        ms = ["–" if v is None else f"{v:.0f} ms" for v in (c["ttft_ms_p99"], c["tpot_ms_p99"])]
        rows.append(["**→**" if c is answer["chosen"] else "", c["kind"], str(c["sweep_id"]), str(c["gpus"]),
                     c["layout"], str(c["batch_size"]), f"{c['tokens_per_second']:.0f}",
                     f"{c['low']:.0f}–{c['high']:.0f}" if c["kind"] == "predicted" else "measured",
                     money(c["usd_per_million_tokens"], 3), *ms, {True: "yes", False: "no", None: "?"}[c["meets_slo"]],
                     ("from " if c["kind"] == "predicted" else "") + ", ".join(map(str, c["run_ids"] or c.get("based_on")
                                                                                   or []))])
    table = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)] + ["| " + " | ".join(r) + " |"
                                                                                 for r in rows]
    notes = "".join(f"\n- {n}" for n in answer["notes"])
    return (f"### {answer['sentence']}\n\nRanked by {answer['ranked_by']}; predicted rows (not measured) by their "
            f"interval's slow end.\n\n" + "\n".join(table) + (f"\n\nNotes:{notes}" if notes else ""))


def build_recommend_panel(gr, store: Store, sweep_dropdown, compare_dropdown, private: dict) -> None:
    with gr.Accordion("Recommend: the cheapest GPU count, layout and batch size that meet an SLO", open=False,
                      elem_id="recommend-panel"):
        with gr.Row():
            slo = gr.Textbox(label="SLO to meet", value="ttft=2000,tpot=200", max_lines=1, elem_id="recommend-slo")
            price = gr.Textbox(label="$ per GPU-hour (optional)", max_lines=1, placeholder="the sweep's prices",
                               elem_id="recommend-price")
            max_gpus = gr.Textbox(label="At most GPUs (optional)", max_lines=1, elem_id="recommend-max-gpus")
            button = gr.Button("Recommend", scale=0, min_width=140, elem_id="recommend-button")
        text = gr.Markdown(elem_id="recommend-text")

    def handle(sweep_id, compare_id, s, p, m):
        try:
            return recommend_view(store, sweep_id, compare_id, s, p, m)
        except ConfigError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    button.click(handle, [sweep_dropdown, compare_dropdown, slo, price, max_gpus], [text], **private)
