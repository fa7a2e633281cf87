"""`studio predict SWEEP`: the what-if of `studio.predict` as a table or JSON.
The request is checked by `parse_request`, shared with the API and the page,
so a bad value is refused with the same words everywhere."""

from __future__ import annotations

import argparse
import json

from runner.config import LIMITS, ConfigError, whole, whole_list
from studio.cli_args import fail
from studio.predict import describe_held_out

MAX_GPUS = 1024  # far past any node count; stops "--gpus 99999999" from looping for minutes


def _whole(name: str, value, flag: str) -> int | None:
    """A what-if setting within the limits a run has (runner.config.LIMITS): a prediction
    for a run the studio would refuse to start answers nothing anyone can check."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return whole(name, value, 1, LIMITS[name], example=f"{flag} 8")


def parse_gpus(value) -> list[int] | None:
    """'1,2,4' (or a list of numbers) into counts; None or '' is the sweep's own counts.
    A count given twice is refused, as a sweep's grid refuses it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return sorted(whole_list("gpus", value, 1, MAX_GPUS, example="1,2,4,8"))


def parse_request(gpus, batch_size, num_prompts, max_new_tokens) -> dict:
    return {"gpus": parse_gpus(gpus), "batch_size": _whole("batch_size", batch_size, "--batch-size"),
            "num_prompts": _whole("num_prompts", num_prompts, "--num-prompts"),
            "max_new_tokens": _whole("max_new_tokens", max_new_tokens, "--max-new-tokens")}


def predict_stored(store, sweep_id: int, request: dict) -> dict:
    """Load one sweep with its rank timelines and predict; a ConfigError names what is wrong."""
    from studio.predict import PredictError, predict

    sweep = store.get_sweep(int(sweep_id))
    if sweep is None:
        known = ", ".join(str(s["id"]) for s in store.list_sweeps(limit=20)) or "none yet"
        raise ConfigError("sweep", f"there is no sweep {sweep_id}; stored sweeps: {known}")
    ranks = store.ranks_for_runs(r["id"] for r in sweep["runs"])
    gpus = request["gpus"] or sorted(set(sweep.get("gpu_counts") or [])) or [1]
    try:
        return predict(sweep, ranks, gpus, request["batch_size"], request["num_prompts"], request["max_new_tokens"])
    except PredictError as exc:
        raise ConfigError(exc.setting, str(exc).split(": ", 1)[1]) from None


def format_prediction(result: dict) -> str:
    req = result["request"]
    lines = [f"sweep {result['sweep_id']}: batch {req['batch_size']}, {req['num_prompts']} prompts, "
             f"{req['max_new_tokens']} new tokens",
             f"{'GPUs':>5} {'rounds':>6} {'tokens/s':>9} {'low':>9} {'high':>9} {'seconds':>8} {'measured':>9}"]
    lines.append("-" * len(lines[-1]))
    for p in result["predictions"]:
        measured = f"{p['measured']['tokens_per_second']:.1f}" if p["measured"] else "-"
        if p["tokens_per_second"] is None:  # the data cannot back a number here: the notes say why
            lines.append(f"{p['gpus']:>5} {p['rounds']:>6} {'-':>9} {'-':>9} {'-':>9} {'-':>8} {measured:>9}")
            continue
        lines.append(f"{p['gpus']:>5} {p['rounds']:>6} {p['tokens_per_second']:>9.1f} {p['low']:>9.1f} "
                     f"{p['high']:>9.1f} {p['seconds']:>8.2f} {measured:>9}")
    lines.append(describe_held_out(result["held_out"]))
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def run_predict(args: argparse.Namespace, sweep_ref) -> int:
    from db.store import Store

    try:
        request = parse_request(args.gpus, args.batch_size, args.num_prompts, args.max_new_tokens)
        store = Store(args.db)
        try:
            sweep_id = sweep_ref(store, args.sweep)
        except ValueError as exc:
            raise ConfigError("sweep", str(exc)) from None
        result = predict_stored(store, sweep_id, request)
    except ConfigError as exc:
        return fail(str(exc))
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))
    return 0
