"""`studio predict SWEEP`: the what-if of `studio.analysis.predict` as a table or JSON.
The request is checked by `studio.analysis.what_if.parse_request`, shared with the
API and the page, so a bad value is refused with the same words everywhere."""

from __future__ import annotations

import argparse
import json

from runner.config import ConfigError
from studio.analysis.predict import describe_held_out
from studio.analysis.what_if import parse_request, predict_stored
from studio.cli.args import fail


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
