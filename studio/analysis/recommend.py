"""`studio recommend` and the Analysis tab's Recommend panel: the cheapest GPU
count, layout and batch size that meet an SLO, at the most tokens/s per dollar.
`recommend` is the one function that answers; the CLI and the panel show its dict.

Candidates are the measured settings (each GPU count, layout and batch size of
each sweep, its repeats together) and, for counts a sweep did not measure, the
predictions of `studio.analysis.predict`, marked as such with their interval. A
measured candidate wins a tie; a prediction wins only on its interval's slow end.

- The SLO is checked as MLPerf's server scenario does (`studio.sweeps.slo.meets`):
  the 99th percentiles of TTFT and TPOT, the worst repeat. A sweep that stored no
  latency (published figures) cannot be checked: the answer says so.
- A prediction has no latency of its own: its TTFT is the nearest measured count's
  at the same batch size and its TPOT the larger of that count's and the predicted
  seconds per round (the interval's slow end) over the new tokens; it is ranked by
  the slow end of its interval, so it is never cheaper than its data allow.
- Cost is `studio.analysis.cost.run_cost`. Without a price for every candidate the
  ranking is tokens/s per GPU, which orders them as any one price per GPU-hour would."""

from __future__ import annotations

from runner.config import ConfigError
from runner.layout import layout_name
from studio.analysis.cost import money, price_of, run_cost
from studio.analysis.predict import PredictError, describe_held_out, predict
from studio.sweeps.slo import meets


def _worst(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None


def _key(run: dict) -> tuple:
    return (run.get("sweep_id"), run.get("world_size"), run.get("tp_size") or 1, run.get("batch_size"),
            run.get("num_prompts"), run.get("max_new_tokens"), run.get("model"))


def measured_candidates(sweep: dict, price, table) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in sweep.get("runs") or []:
        if r.get("status") == "succeeded" and r.get("tokens_per_second"):
            groups.setdefault(_key({**r, "sweep_id": sweep["id"]}), []).append(r)
    out = []
    for runs in groups.values():
        first = runs[0]
        value, source = price_of(first, price, table)
        tps = _median([r["tokens_per_second"] for r in runs])
        out.append({"kind": "measured", "sweep_id": sweep["id"], "gpus": first["world_size"],
                    "layout": first.get("layout") or f"{first['world_size']} GPU(s)",
                    "tp_size": first.get("tp_size") or 1, "batch_size": first.get("batch_size"),
                    "model": first.get("model"), "max_new_tokens": first.get("max_new_tokens"),
                    "tokens_per_second": tps, "low": None, "high": None, "run_ids": sorted(r["id"] for r in runs),
                    "ttft_ms_p99": _worst([r.get("ttft_ms_p99") for r in runs]),
                    "tpot_ms_p99": _worst([r.get("tpot_ms_p99") for r in runs]),
                    "price_source": source, **_cost(first["world_size"], tps, value)})
    return out


def _cost(gpus: int, tps: float, price) -> dict:
    cost = run_cost({"world_size": gpus, "tokens_per_second": tps}, price)
    return {"price_per_gpu_hour": price, "usd_per_million_tokens": cost["usd_per_million_tokens"],
            "tokens_per_second_per_dollar_hour": cost["tokens_per_second_per_dollar_hour"]}


def predicted_candidates(sweep: dict, ranks: dict, measured: list[dict], counts: list[int], price, table) -> tuple:
    """Predictions at the counts the sweep did not measure, per batch size it ran; and the notes."""
    out, notes = [], []
    mine = [c for c in measured if c["sweep_id"] == sweep["id"] and c["tp_size"] == 1]
    for batch in sorted({c["batch_size"] for c in mine if c["batch_size"]}):
        at_batch = [c for c in mine if c["batch_size"] == batch]
        missing = [n for n in counts if n not in {c["gpus"] for c in at_batch}]
        if not missing:
            continue
        try:
            result = predict(sweep, ranks, missing, batch_size=batch)
        except PredictError as exc:
            notes.append(f"sweep {sweep['id']}, batch {batch}: no prediction ({exc})")
            continue
        notes.append(f"sweep {sweep['id']}, batch {batch}: {describe_held_out(result['held_out'])}")
        first = next(r for r in sweep["runs"] if r["id"] == at_batch[0]["run_ids"][0])
        for p in result["predictions"]:
            if p["tokens_per_second"] is None or p.get("measured"):
                continue
            near = min(at_batch, key=lambda c: (abs(c["gpus"] - p["gpus"]), c["gpus"]))
            step_ms = 1000 * p["seconds_high"] / p["rounds"] / p["max_new_tokens"] if p.get("seconds_high") else None
            value, source = price_of(first, price, table)
            out.append({"kind": "predicted", "sweep_id": sweep["id"], "gpus": p["gpus"],
                        "layout": layout_name(p["gpus"], 1), "tp_size": 1, "batch_size": batch,
                        "model": near["model"], "max_new_tokens": p["max_new_tokens"],
                        "tokens_per_second": p["tokens_per_second"], "low": p["low"], "high": p["high"],
                        "run_ids": [], "based_on": sorted(i for c in at_batch for i in c["run_ids"]),
                        "ttft_ms_p99": near["ttft_ms_p99"],
                        "tpot_ms_p99": None if near["tpot_ms_p99"] is None else max(near["tpot_ms_p99"], step_ms or 0),
                        "price_source": source, **_cost(p["gpus"], p["low"], value)})
    return out, notes


def _rank_value(c: dict, by_dollar: bool) -> float:
    if by_dollar:
        return c["tokens_per_second_per_dollar_hour"] or 0.0
    tps = c["low"] if c["kind"] == "predicted" else c["tokens_per_second"]
    return tps / c["gpus"]


def recommend(sweeps: list[dict], ranks_by_run: dict, slo: dict, price: float | None = None,
              table: list[dict] | None = None, max_gpus: int | None = None) -> dict:
    """The answer: the chosen candidate (or None), every candidate with its SLO check,
    the sentence to read aloud and the notes behind it."""
    if not slo:
        raise ConfigError("slo", "give the latency limits to meet: ttft=MS,tpot=MS (e.g. ttft=2000,tpot=200)")
    measured = [c for s in sweeps for c in measured_candidates(s, price, table)]
    if not measured:
        raise ConfigError("sweep", "no succeeded run in " + ", ".join(f"sweep {s['id']}" for s in sweeps)
                          + ": run one first")
    top = max_gpus or 2 * max(c["gpus"] for c in measured)
    counts = list(range(1, top + 1))
    predicted, notes = [], []
    for s in sweeps:
        rows, why = predicted_candidates(s, ranks_by_run, measured, counts, price, table)
        predicted += rows
        notes += why
    candidates = [c for c in measured + predicted if max_gpus is None or c["gpus"] <= max_gpus]
    for c in candidates:
        c["meets_slo"] = None if c["ttft_ms_p99"] is None else meets(c, slo)
    by_dollar = all(c["tokens_per_second_per_dollar_hour"] for c in candidates)
    checkable = any(c["meets_slo"] is not None for c in candidates)
    if not checkable:
        notes.append("no run stored per-request latency (TTFT, TPOT): the SLO cannot be checked, so the answer is "
                     "the best tokens/s per dollar with the SLO unverified")
    if not by_dollar:
        notes.append("not every candidate has a price (give --price): ranked by tokens/s per GPU, which orders "
                     "them as any one price per GPU-hour would")
    ok = [c for c in candidates if c["meets_slo"] or (not checkable)]
    # a prediction wins only where even its interval's slow end beats every measured candidate
    order = sorted(ok, key=lambda c: (-_rank_value(c, by_dollar), c["kind"] != "measured", c["gpus"]))
    chosen = order[0] if order else None
    for c in candidates:
        c["rank_value"] = _rank_value(c, by_dollar)
    return {"slo": slo, "price": price, "max_gpus": max_gpus, "ranked_by": "tokens/s per $/hour" if by_dollar
            else "tokens/s per GPU", "chosen": chosen, "slo_checked": checkable,
            "candidates": sorted(candidates, key=lambda c: (-c["rank_value"], c["kind"] != "measured")),
            "sentence": sentence(chosen, candidates, slo, checkable, by_dollar), "notes": notes}


def sentence(chosen: dict | None, candidates: list[dict], slo: dict, checkable: bool, by_dollar: bool) -> str:
    """One sentence a team lead can read aloud."""
    if chosen is None:
        near = min(candidates, key=lambda c: (c["ttft_ms_p99"] or 0) / slo["ttft_ms"] + (c["tpot_ms_p99"] or 0)
                   / slo["tpot_ms"])
        return (f"Nothing measured or predicted meets {slo['name']}: the closest is {near['gpus']} GPU(s) at batch "
                f"{near['batch_size']}, TTFT p99 {near['ttft_ms_p99']:.0f} ms and TPOT p99 "
                f"{near['tpot_ms_p99'] or 0:.0f} ms; relax the SLO or measure smaller batches.")
    c = chosen
    what = f"{c['gpus']} GPU(s)" + ("" if c["gpus"] == 1 else f" as {c['layout']}") + f" at batch {c['batch_size']}"
    rate = (f"{c['tokens_per_second']:.0f} tokens/s" if c["kind"] == "measured" else
            f"a predicted {c['tokens_per_second']:.0f} tokens/s (interval {c['low']:.0f}–{c['high']:.0f}, "
            "not measured)")
    money_part = (f", {money(c['usd_per_million_tokens'], 3)} per million tokens at {money(c['price_per_gpu_hour'])} "
                  f"per GPU-hour" if by_dollar else ", no price given")
    backed = (f"measured in run(s) {', '.join(map(str, c['run_ids']))} of sweep {c['sweep_id']}" if c["kind"] ==
              "measured" else f"predicted from run(s) {', '.join(map(str, c['based_on']))} of sweep {c['sweep_id']}")
    check = (f"meets {slo['name']} (TTFT p99 {c['ttft_ms_p99']:.0f} ms, TPOT p99 {c['tpot_ms_p99'] or 0:.0f} ms)"
             if checkable else f"the SLO ({slo['name']}) could not be checked: no latency stored")
    return f"Use {what}: {rate}{money_part}; {check}; {backed}."


def recommend_stored(store, sweep_ids: list[int], slo: dict, price: float | None = None,
                     table: list[dict] | None = None, max_gpus: int | None = None) -> dict:
    """Load the sweeps with their rank timelines and answer; a ConfigError names what is wrong."""
    sweeps, ranks = [], {}
    for sweep_id in sweep_ids:
        sweep = store.get_sweep(int(sweep_id))
        if sweep is None:
            raise ConfigError("sweep", f"there is no sweep {sweep_id}; `studio runs` lists them")
        stored = store.sweep_prices(int(sweep_id)) or {}
        if price is None and table is None and (stored.get("price") or stored.get("table")):
            price, table = stored.get("price"), stored.get("table") or None
        sweeps.append(sweep)
        ranks.update(store.ranks_for_runs(r["id"] for r in sweep["runs"]))
    return recommend(sweeps, ranks, slo, price, table, max_gpus)
