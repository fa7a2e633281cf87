"""What a run costs, as `studio runs` and `studio show` print it (issue 23): the one
formula (studio.analysis.cost.run_cost) at the price given with --price, else the
prices kept with the run's sweep, else the example table, labelled as examples."""

from __future__ import annotations

from studio.analysis.cost import cost_text, money, parse_price, stored_costs

PRICE_HELP = ("$ per GPU-hour for the cost (default: the prices kept with the sweep, else example prices "
              "to replace); a CPU run is costed only at a price given here")


def run_costs(store, runs: list[dict], price_text: str | None) -> dict:
    """Each succeeded run's cost, keyed by run id; a bad --price raises ConfigError."""
    price = parse_price(price_text, name="--price")
    done = [r for r in runs if r.get("status") == "succeeded"]
    return stored_costs(done, store.sweep_prices, price)


def cost_cell(cost: dict | None) -> str:
    return "-" if not cost or cost["usd_per_million_tokens"] is None else money(cost["usd_per_million_tokens"], 3)


def cost_fields(cost: dict | None) -> dict:
    """The cost keys `studio runs --json` adds to a run."""
    cost = cost or {}
    return {"usd_per_million_tokens": cost.get("usd_per_million_tokens"),
            "price_per_gpu_hour": cost.get("price_per_gpu_hour"), "price_source": cost.get("price_source"),
            "cost": cost_text(cost) if cost else None}


def no_cost_notes(costs: dict) -> list[str]:
    """Why the runs with a dash have no cost, each reason once."""
    reasons = {}
    for run_id, cost in costs.items():
        if cost["usd_per_million_tokens"] is None:
            reasons.setdefault(cost_text(cost), []).append(str(run_id))
    return [f"no $ for run(s) {', '.join(ids)}: {reason}" for reason, ids in reasons.items()]
