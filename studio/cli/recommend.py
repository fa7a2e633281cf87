"""`studio recommend SWEEP… --slo ttft=MS,tpot=MS [--price P] [--max-gpus N]`: the
answer of `studio.analysis.recommend.recommend` as a sentence and a table, or JSON."""

from __future__ import annotations

import argparse
import json

from runner.config import ConfigError, whole
from studio.analysis.cost import money, parse_price
from studio.analysis.recommend import recommend_stored
from studio.cli.args import add_db_option, fail
from studio.sweeps.slo import parse_slo


def format_answer(answer: dict) -> str:
    lines = [answer["sentence"], "", f"candidates, best first (ranked by {answer['ranked_by']}; predicted rows by "
             "their interval's slow end):",
             f"{'':2}{'kind':<9} {'sweep':>5} {'GPUs':>4} {'layout':<12} {'batch':>5} {'tokens/s':>9} {'interval':>13} "
             f"{'$/M tok':>8} {'TTFT p99':>9} {'TPOT p99':>9} {'SLO':>4}  runs"]
    for c in answer["candidates"]:
        chosen = "→ " if c is answer["chosen"] else "  "
        interval = f"{c['low']:.0f}-{c['high']:.0f}" if c["kind"] == "predicted" else "measured"
        slo = {True: "yes", False: "no", None: "?"}[c["meets_slo"]]
        ms = [("–" if v is None else f"{v:.0f} ms") for v in (c["ttft_ms_p99"], c["tpot_ms_p99"])]
        runs = ",".join(map(str, c["run_ids"] or c.get("based_on") or []))
        lines.append(f"{chosen}{c['kind']:<9} {c['sweep_id']:>5} {c['gpus']:>4} {c['layout']:<12} "
                     f"{c['batch_size'] if c['batch_size'] is not None else '–':>5} {c['tokens_per_second']:>9.0f} "
                     f"{interval:>13} {money(c['usd_per_million_tokens'], 3):>8} {ms[0]:>9} {ms[1]:>9} {slo:>4}  "
                     + ("from " if c["kind"] == "predicted" else "") + runs)
    lines += [f"note: {n}" for n in answer["notes"]]
    return "\n".join(lines)


def cmd_recommend(args: argparse.Namespace, sweep_ref) -> int:
    from db.store import Store

    store = Store(args.db)
    try:
        slo = parse_slo(args.slo)
        price = parse_price(args.price)
        max_gpus = whole("max_gpus", args.max_gpus, 1, 1024, example="--max-gpus 8") if args.max_gpus else None
        try:
            ids = [sweep_ref(store, s) for s in args.sweeps]
        except ValueError as exc:
            raise ConfigError("sweep", str(exc)) from None
        answer = recommend_stored(store, ids, slo, price, None, max_gpus)
    except ConfigError as exc:
        return fail(str(exc))
    print(json.dumps(answer, indent=2, default=str) if args.json else format_answer(answer))
    return 0


def add_recommend_parser(sub, sweep_ref) -> None:
    rec = sub.add_parser("recommend", help="the cheapest GPU count, layout and batch size that meet an SLO")
    rec.add_argument("sweeps", nargs="+", metavar="SWEEP", help="sweep ids (see `studio runs`), or ref:batched")
    rec.add_argument("--slo", required=True, help="latency limits to meet: ttft=MS,tpot=MS, or mlperf-llama2-70b")
    rec.add_argument("--price", default=None, metavar="DOLLARS", help="$ per GPU-hour for every run (default: the "
                     "prices kept with the sweep, else example prices to replace; a CPU run has none)")
    rec.add_argument("--max-gpus", default=None, metavar="N", help="consider at most N GPUs")
    rec.add_argument("--json", action="store_true")
    add_db_option(rec)
    rec.set_defaults(func=lambda args: cmd_recommend(args, sweep_ref))
