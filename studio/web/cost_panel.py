"""The Analysis tab's Cost panel: a price per GPU-hour and a table of prices per
GPU model, edited in the page and kept with the sweep, turned by
`studio.analysis.cost` into $ per million output tokens and per million tokens
within the SLO. Handlers are plain functions of (store, form values)."""

from __future__ import annotations

import sqlite3

import pandas as pd

from db.serving import server_runs
from db.store import Store
from runner.config import ConfigError
from studio.analysis.cost import COST_HEADERS, clean_table, cost_table_rows, default_table, parse_price
from studio.reports.report import ReportError, load_analysis

TABLE_HEADERS = ["GPU model (as its name contains it)", "$ per GPU-hour", "source"]


def price_frame(store: Store, sweep_id) -> tuple[str, pd.DataFrame]:
    """The price box and table a sweep opens with: the ones kept with it, else the examples."""
    stored = (store.sweep_prices(int(sweep_id)) if sweep_id not in (None, "") else None) or {}
    rows = stored.get("table") or default_table()
    price = stored.get("price")
    return ("" if price is None else f"{price:g}",
            pd.DataFrame([[r["gpu"], r["price"], r["source"]] for r in rows], columns=TABLE_HEADERS))


def _rows(table) -> list:
    if isinstance(table, pd.DataFrame):
        return table.values.tolist()
    return list((table or {}).get("data", table) if isinstance(table, dict) else table or [])


def cost_view(store: Store, sweep_id, price_text, table) -> str:
    """The sweep's cost per GPU count as markdown; a ConfigError names a bad price."""
    price, rows = parse_price(price_text), clean_table(_rows(table))
    if sweep_id in (None, ""):
        return "Pick a sweep above (or add the reference post's sweeps) to cost its runs."
    if server_runs(store, int(sweep_id)):  # its cost per token at a rate is not this panel's offline question
        return f"Sweep {sweep_id} is of the server scenario: the cost panel costs offline sweeps."
    try:
        analysis = load_analysis(store, int(sweep_id), price=price, table=rows)
    except (ReportError, ValueError) as exc:
        return f"Cannot cost sweep {sweep_id}: {exc}"
    cost = analysis["cost"]
    lines = ["| " + " | ".join(COST_HEADERS) + " |", "|" + "---|" * len(COST_HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in cost_table_rows(cost)]
    slo = "" if cost.get("slo") else " Give the sweep an SLO (ttft=MS,tpot=MS) for the cost within it."
    return (f"**{cost['text']}**\n\n" + "\n".join(lines) + "\n\nEvery GPU of a run is paid for its whole time. "
            "Prices marked example are placeholders, not market data: replace them with yours." + slo)


def keep_prices(store: Store, sweep_id, price_text, table) -> str:
    """Store the price and the table with the sweep; a published or imported sweep stays read-only."""
    if sweep_id in (None, ""):
        return "Pick a sweep first."
    prices = {"price": parse_price(price_text), "table": clean_table(_rows(table))}
    try:
        store.set_sweep_prices(int(sweep_id), prices)
    except sqlite3.DatabaseError:
        return (f"Sweep {sweep_id} is read-only (published or imported): these prices cost it in this view "
                "but are not kept with it.")
    return f"Kept with sweep {sweep_id}: " + (f"${prices['price']:g} per GPU-hour for every run" if prices["price"]
                                               else f"{len(prices['table'])} price(s) by GPU model") + "."


def build_cost_panel(gr, store: Store, sweep_dropdown, private: dict) -> tuple:
    """The panel inside the caller's layout; it fills itself when the sweep changes.
    Returns its fill event (function, inputs, outputs) for the tab's opening, where the
    dropdown's value was set at build time and fires no change."""
    with gr.Accordion("Cost: $ per million tokens at a price per GPU-hour", open=False, elem_id="cost-panel"):
        with gr.Row():
            price = gr.Textbox(label="$ per GPU-hour for every run (optional; else the table)", max_lines=1,
                               placeholder="e.g. 2.50", elem_id="cost-price")
            show = gr.Button("Cost it", scale=0, min_width=120, elem_id="cost-button")
            keep = gr.Button("Keep these prices with the sweep", scale=0, min_width=220)
        table = gr.Dataframe(price_frame(store, None)[1], interactive=True, label="Prices per GPU model "
                             "(example prices: replace them with yours)", elem_id="cost-table")
        text = gr.Markdown(elem_id="cost-text")

    def fill(sweep_id):
        box, frame = price_frame(store, sweep_id)
        return box, frame, cost_view(store, sweep_id, box, frame)

    def handle(handler):
        def run(sweep_id, p, t):
            try:
                return handler(store, sweep_id, p, t)
            except ConfigError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
        return run

    sweep_dropdown.change(fill, [sweep_dropdown], [price, table, text], **private)
    show.click(handle(cost_view), [sweep_dropdown, price, table], [text], **private)
    keep.click(handle(keep_prices), [sweep_dropdown, price, table], [text], **private)
    return fill, [sweep_dropdown], [price, table, text]
