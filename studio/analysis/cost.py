"""What a run costs: a price per GPU-hour turned into dollars per million output
tokens and per million tokens within the SLO (goodput). `run_cost` is the one
function that computes it; History, Compare, Analysis, the report and
`studio recommend` all show its numbers.

The price of a run comes, first found, from: the price the user gave (`--price`,
the page's price box); the table kept with its sweep (edited in the page); the
table of EXAMPLE prices below. The example prices are round placeholders, NOT
market data: replace them with what you pay. A run on the CPU has no example
price: it is costed only at a price the user gives."""

from __future__ import annotations

import math

from runner.config import ConfigError
from runner.metrics import goodput

EXAMPLE_NOTE = "example price, not market data: replace it with what you pay"
# (GPU model as its name contains it, $ per GPU-hour); matched longest name first
EXAMPLE_PRICES: list[tuple[str, float]] = [
    ("H200", 3.50), ("H100", 2.50), ("A100", 1.50), ("L40S", 1.00), ("A10", 0.75), ("L4", 0.50),
    ("RTX 4090", 0.40), ("RTX 3090", 0.25),
]
MAX_PRICE = 10_000.0  # $ per GPU-hour: far past any real one; stops a typo's 1e300 from printing nonsense


def parse_price(value, name: str = "price") -> float | None:
    """A price per GPU-hour in dollars (`2.50`), or None for none given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        price = float(str(value).strip().lstrip("$")) if str(value).strip().lstrip("$").isascii() else math.nan
    except ValueError:
        price = math.nan
    if not 0 < price <= MAX_PRICE:
        raise ConfigError(name, f"{value!r} is not a price per GPU-hour in dollars above 0 and at most "
                          f"{MAX_PRICE:g}, such as 2.50")
    return price


def default_table() -> list[dict]:
    """The example table, as the page shows and edits it."""
    return [{"gpu": gpu, "price": price, "source": EXAMPLE_NOTE} for gpu, price in EXAMPLE_PRICES]


def clean_table(rows) -> list[dict]:
    """A table edited in the page (rows of GPU model, price, source) checked: a row
    without a model or price is dropped, a bad price is refused by its model."""
    out = []
    for row in rows or []:
        if isinstance(row, dict):
            gpu, price, source = row.get("gpu"), row.get("price"), row.get("source")
        else:
            gpu, price, source = (list(row) + [None, None, None])[:3]
        if not str(gpu or "").strip() or price in (None, ""):
            continue
        value = parse_price(price, name=f"price of {str(gpu).strip()}")
        out.append({"gpu": str(gpu).strip(), "price": value, "source": str(source or "given by the user").strip()})
    return out


def gpu_model(run: dict) -> str | None:
    """The GPU the run ran on, as its environment named it; None on the CPU."""
    if (run.get("device") or "") == "cpu":
        return None
    names = ((run.get("environment") or {}).get("gpu_names") or [])
    return names[0] if names else None


def price_of(run: dict, price: float | None = None, table: list[dict] | None = None) -> tuple[float | None, str]:
    """(price per GPU-hour, where it comes from) for one run."""
    if price is not None:
        return price, "given"
    name = gpu_model(run)
    if name is None:
        return None, "no price: a CPU run is costed only at a price you give (--price)"
    for row in sorted(table if table is not None else default_table(), key=lambda r: -len(r["gpu"])):
        if row["gpu"].lower() in name.lower():
            return row["price"], f"{row['gpu']}: {row['source']}"
    return None, f"no price for {name}: give one (--price, or the page's price table)"


def run_cost(run: dict, price: float | None, outputs: list[dict] | None = None, slo: dict | None = None) -> dict:
    """$ per million output tokens and, under an SLO, per million tokens within it
    (goodput), for a run at `price` dollars per GPU-hour; tokens/s per dollar-hour.
    Every GPU of the run is paid for its whole time."""
    gpus = run.get("world_size") or (run.get("num_gpus") or 1) * (run.get("num_nodes") or 1)
    tps = run.get("tokens_per_second")
    good = goodput(outputs or [], run.get("seconds"), slo) if slo and outputs else None
    out = {"gpus": gpus, "price_per_gpu_hour": price, "dollars_per_hour": None, "usd_per_million_tokens": None,
           "usd_per_million_good_tokens": None, "tokens_per_second_per_dollar_hour": None, "goodput": good}
    if price is None:
        return out
    hourly = price * gpus
    out["dollars_per_hour"] = hourly
    if tps:
        out["usd_per_million_tokens"] = hourly / (tps * 3600) * 1e6
        out["tokens_per_second_per_dollar_hour"] = tps / hourly
    if good:
        out["usd_per_million_good_tokens"] = hourly / (good * 3600) * 1e6
    return out


def costs(runs: list[dict], price: float | None = None, table: list[dict] | None = None,
          outputs_by_run: dict | None = None, slo: dict | None = None) -> dict[int, dict]:
    """run_cost for each run, priced by price_of; keyed by run id."""
    out = {}
    for run in runs:
        value, source = price_of(run, price, table)
        out[run.get("id")] = {**run_cost(run, value, (outputs_by_run or {}).get(run["id"]), slo), "price_source": source}
    return out


def money(value, digits: int = 2) -> str:
    """Dollars as every view writes them; a dash where there is none."""
    return "–" if value is None else f"${value:,.{digits}f}"


def stored_costs(runs: list[dict], prices_of=None, price: float | None = None) -> dict:
    """costs() of runs from any sweeps: at `price` when given, else each sweep's runs at
    the prices kept with it (`prices_of(sweep_id)`, e.g. Store.sweep_prices), else the
    example table."""
    out: dict = {}
    by_sweep: dict = {}
    for r in runs:
        by_sweep.setdefault(r.get("sweep_id"), []).append(r)
    for sweep_id, mine in by_sweep.items():
        stored = (prices_of(sweep_id) if prices_of is not None and sweep_id else None) or {}
        out.update(costs(mine, price if price is not None else stored.get("price"), stored.get("table")))
    return out


def cost_text(cost: dict | None) -> str:
    """One run's $ per million output tokens with where its price came from, or why
    there is none (a CPU run without a price says so rather than show $0)."""
    if not cost:
        return "no cost: the run did not succeed"
    if cost["usd_per_million_tokens"] is None:
        if cost["price_per_gpu_hour"] is None:
            return cost["price_source"]
        return "no cost: the run measured no tokens/s"
    return (f"{money(cost['usd_per_million_tokens'], 3)} per M output tokens at "
            f"{money(cost['price_per_gpu_hour'])} per GPU-hour ({cost['price_source']})")


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None


def sweep_cost(runs: list[dict], points: list[dict], price: float | None = None, table: list[dict] | None = None,
               outputs_by_run: dict | None = None, slo: dict | None = None) -> dict:
    """Per GPU count of an analysed sweep: the median of its runs' run_cost, and a
    line to read. `points` are the analysis' (each with its run ids)."""
    per_run = costs(runs, price, table, outputs_by_run, slo)
    rows = []
    for p in points:
        mine = [per_run[i] for i in p["run_ids"] if i in per_run]
        if not mine:
            continue
        rows.append({"gpus": p["gpus"], "price_per_gpu_hour": mine[0]["price_per_gpu_hour"],
                     "price_source": mine[0]["price_source"],
                     "usd_per_million_tokens": _median([c["usd_per_million_tokens"] for c in mine]),
                     "usd_per_million_good_tokens": _median([c["usd_per_million_good_tokens"] for c in mine]),
                     "tokens_per_second_per_dollar_hour": _median([c["tokens_per_second_per_dollar_hour"]
                                                                   for c in mine])})
    priced = [r for r in rows if r["usd_per_million_tokens"] is not None]
    if priced:
        best = min(priced, key=lambda r: r["usd_per_million_tokens"])
        text = (f"Cheapest per token: {best['gpus']} GPU(s) at {money(best['usd_per_million_tokens'])} per million "
                f"output tokens ({money(best['price_per_gpu_hour'])} per GPU-hour, {best['price_source']}).")
    else:
        text = "No cost: " + (rows[0]["price_source"] if rows else "no succeeded run") + "."
    # a list, not a dict keyed by run id: the report's JSON and the API need string keys
    return {"rows": rows, "runs": [{"run_id": k, **v} for k, v in per_run.items()], "text": text, "slo": slo}


COST_HEADERS = ["GPUs", "$ per GPU-hour", "$ per M output tokens", "$ per M tokens within the SLO",
                "tokens/s per $/hour", "price from"]


def cost_table_rows(cost: dict) -> list[list[str]]:
    """sweep_cost's rows as text, for the report and the Analysis tab."""
    return [[str(r["gpus"]), money(r["price_per_gpu_hour"]), money(r["usd_per_million_tokens"], 3),
             money(r["usd_per_million_good_tokens"], 3) if cost.get("slo") else "no SLO given",
             "–" if r["tokens_per_second_per_dollar_hour"] is None else f"{r['tokens_per_second_per_dollar_hour']:.1f}",
             r["price_source"]] for r in cost["rows"]]
