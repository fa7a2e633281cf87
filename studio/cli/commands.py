"""`studio`: run sweeps, list and show runs, serve the web studio."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

from runner.config import ConfigError, whole
from studio.cli.args import EXIT_BAD_INPUT, EXIT_RUN_FAILED, add_db_option, add_run_options, fail, whole_arg
from studio.cli.costs import PRICE_HELP, parse_price
from studio.cli.listing import cmd_runs, cmd_show, format_table, run_summary


class ProgressBars:
    """One tqdm bar per run on stderr, fed by the worker's progress lines."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.done_by_rank: dict[int, int] = {}

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        kind = event["event"]
        if kind == "run-start":
            self.done_by_rank = {}
            self.bar = tqdm(total=event["num_prompts"], unit="prompt", file=sys.stderr, leave=True,
                            desc=f"run {event['run_id']} · {event['num_gpus']} GPU(s) · repeat {event['repeat'] + 1}")
            self.bar.set_postfix_str("launching")
        elif self.bar is None:
            return
        elif kind == "phase":
            self.bar.set_postfix_str(event["phase"])
        elif kind == "waiting":
            self.bar.set_postfix_str(f"waiting: {event['holder']}")
        elif kind == "progress":
            self.done_by_rank[event["rank"]] = event["done"]
            self.bar.n = sum(self.done_by_rank.values())
            self.bar.refresh()
        elif kind == "run-end":
            self.bar.set_postfix_str(event["status"])
            self.bar.close()
            self.bar = None


def cmd_run(args: argparse.Namespace) -> int:
    from db.store import Store
    from runner.result import RunResult
    from studio.sweeps.plan import plan_request
    from studio.sweeps.run import create_rows, run_sweep
    from studio.sweeps.server_settings import is_server, refuse_mixed
    from studio.sweeps.settings import SweepRequest

    try:
        request = SweepRequest.from_cli_args(args)
        if is_server(request):
            from studio.cli.serve_load import run_server_command

            return run_server_command(request, args)
        refuse_mixed(request)
        plan = plan_request(request)
    except ConfigError as exc:
        return fail(str(exc))
    config = plan.base
    if config.num_nodes > 1 and config.node_rank > 0:
        return run_worker_node(plan, args)
    store = Store(args.db)
    cancel = threading.Event()
    sweep_id, run_ids = create_rows(plan, store, origin="cli")
    try:
        outcome = run_sweep(plan, store, on_event=ProgressBars(sys.stderr.isatty() or not args.json), cancel=cancel,
                            sweep_id=sweep_id, run_ids=run_ids, program="CLI")
    except KeyboardInterrupt:
        # launch() has already ended the run's processes; store what never finished as cancelled
        cancel.set()
        for run in store.list_runs(ids=run_ids):
            if run["status"] in ("queued", "running"):
                store.finish_run(run["id"], RunResult.failure(run["config"], "cancelled", "stopped with Ctrl+C"))
        store.finish_sweep(sweep_id, "cancelled")
        return fail("interrupted", 130)
    runs = [store.get_run(i) for i in outcome.run_ids]
    if args.json:
        print(json.dumps([run_summary(r, plan.slo) for r in runs], indent=2))
    else:
        print(f"sweep {outcome.sweep_id}: {config.model}, {config.mode}, batch {config.batch_size}, "
              f"{len(plan.prepared[0].config.prompts)} prompts, {config.max_new_tokens} new tokens, "
              f"{plan.prepared[0].device}")
        print(format_table(runs))
    return 0 if outcome.status == "succeeded" else EXIT_RUN_FAILED


def run_worker_node(plan, args: argparse.Namespace) -> int:
    """Nodes 1.. of a multi-node run lend their processes; node 0 stores the run."""
    from studio.sweeps.run import run_node_part

    config = plan.base
    cancel = threading.Event()
    try:
        results = run_node_part(plan, on_event=ProgressBars(sys.stderr.isatty() or not args.json), cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        return fail("interrupted", 130)
    failed = [r for r in results if r.status != "succeeded"]
    if args.json:
        print(json.dumps({"node_rank": config.node_rank, "num_nodes": config.num_nodes, "stored": False,
                          "main_address": config.main_address, "runs": len(results),
                          "status": "failed" if failed else "succeeded",
                          "errors": [r.error for r in failed]}, indent=2))
    else:
        done = len(results) - len(failed)
        print(f"node {config.node_rank} of {config.num_nodes}: {done} of {len(results)} run(s) finished on this "
              f"node; nothing stored here, node 0 ({config.main_address}) stores the results")
        for r in failed:
            print(f"  {r.status}: {r.error}")
    return EXIT_RUN_FAILED if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from studio.cli.serve import serve

    return serve(args)


def _sweep_ref(store, text: str) -> int:
    """A sweep id, or ref:simple / ref:batched for the reference post's figures."""
    from studio.sweeps.reference import REFERENCE_SWEEPS, ensure_reference_sweeps

    if str(text).startswith("ref:"):
        key = text[4:]
        if key not in REFERENCE_SWEEPS:
            known = ", ".join("ref:" + k for k in REFERENCE_SWEEPS)
            raise ValueError(f"{text!r} is not a reference sweep; use {known}")
        return ensure_reference_sweeps(store)[key]
    try:
        return whole("sweep", text, 1)
    except ConfigError:
        raise ValueError(f"{text!r} is not a sweep id; give a number in the digits 0-9 (see `studio runs`) "
                         "or ref:batched") from None


def cmd_report(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.reports.report import ReportError, write_report

    store = Store(args.db)
    if args.compare and "," in args.compare:  # several sweeps, whoever measured them: one side-by-side page
        from studio.cli.import_peers import side_by_side_report

        return side_by_side_report(store, [_sweep_ref(store, s) for s in [args.sweep, *args.compare.split(",")]], args)
    try:
        sweep_id = _sweep_ref(store, args.sweep)
        other = _sweep_ref(store, args.compare) if args.compare else None
        path, analysis = write_report(store, sweep_id, args.format, args.output, compare_with=other, force=args.force,
                                      price=parse_price(args.price))
    except (ReportError, ValueError, ConfigError) as exc:
        return fail(str(exc))
    print(analysis["explanation"])
    print(f"\nwrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from studio.cli.predict import run_predict

    return run_predict(args, _sweep_ref)


def cmd_present(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.reports.deck import write_deck
    from studio.reports.report import ReportError

    store = Store(args.db)
    try:
        sweep_id, price = _sweep_ref(store, args.sweep), parse_price(args.price, name="--price")
        path, analysis = write_deck(store, sweep_id, args.output, force=args.force, price=price)
    except (ReportError, ValueError) as exc:
        return fail(str(exc))
    print(analysis["explanation"])
    print(f"\nwrote {path} (opens offline; arrow keys, space or a click advance)")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.sweeps.reference import REFERENCE_SWEEPS, ensure_reference_sweeps, source_of

    store = Store(args.db)
    if args.action == "load":
        before = {key: store.sweep_by_source(source_of(key)) for key in REFERENCE_SWEEPS}
        ids = ensure_reference_sweeps(store)
        for key, sweep_id in ids.items():
            state = "already stored" if before[key] else "loaded"
            print(f"ref:{key}: sweep {sweep_id} ({state}, read-only): {REFERENCE_SWEEPS[key]['name']}")
        return 0
    rows = [store.sweep_by_source(source_of(key)) for key in REFERENCE_SWEEPS]
    if not any(rows):
        print("no reference sweep stored yet: `studio reference load` adds them")
    for key, row in zip(REFERENCE_SWEEPS, rows):
        if row:
            print(f"ref:{key}: sweep {row['id']}: {row['name']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Scaling Studio: multi-GPU generation benchmarks")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a sweep over GPU counts and store it")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list stored runs, newest first")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--model")
    runs.add_argument("--status")
    runs.add_argument("--sweep", type=whole_arg)
    runs.add_argument("--limit", type=whole_arg, default=100)
    runs.add_argument("--price", default=None, metavar="DOLLARS", help=PRICE_HELP)
    add_db_option(runs)
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="show one run with its outputs")
    show.add_argument("id", type=whole_arg)
    show.add_argument("--json", action="store_true")
    show.add_argument("--price", default=None, metavar="DOLLARS", help=PRICE_HELP)
    add_db_option(show)
    show.set_defaults(func=cmd_show)

    serve = sub.add_parser("serve", help="start the web studio (the default command)")
    serve.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=whole_arg, default=os.environ.get("STUDIO_PORT", "7860"))
    serve.add_argument("--auth", default=os.environ.get("STUDIO_AUTH"), help="user:password (needed off 127.0.0.1)")
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback address without auth")
    serve.add_argument("--trust-remote-code", action="store_true", help="let runs load models with custom code")
    serve.add_argument("--allow-engines", action="store_true",
                       help="let the page and the API give the server scenario an engine command (run on this "
                       "machine) or a server URL (fetched from it)")
    serve.add_argument("--no-resume", action="store_true",
                       help="mark runs a previous server left queued as interrupted instead of running them")
    add_db_option(serve)
    serve.set_defaults(func=cmd_serve)

    report = sub.add_parser("report", help="write a sweep's scaling analysis as HTML or JSON")
    report.add_argument("sweep", help="sweep id (see `studio runs`), or ref:batched / ref:simple")
    report.add_argument("--format", default="html", choices=["html", "json"])
    report.add_argument("--output", "-o", default=None, help="file to write (default sweep-ID-report.FORMAT)")
    report.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    report.add_argument("--compare", default=None, metavar="SWEEP", help="a second sweep for an A/B comparison; "
                        "several (B,C) for one side-by-side page, imported sweeps included")
    report.add_argument("--price", default=None, metavar="DOLLARS", help="$ per GPU-hour for the cost section "
                        "(default: the prices kept with the sweep, else example prices to replace)")
    add_db_option(report)
    report.set_defaults(func=cmd_report)

    predict = sub.add_parser("predict", help="predict tokens/s for GPU counts or settings a sweep did not run")
    predict.add_argument("sweep", help="sweep id (see `studio runs`)")
    predict.add_argument("--gpus", default=None, help="GPU counts to predict, e.g. 1,2,3,4,8 (default: the sweep's)")
    predict.add_argument("--batch-size", default=None, help="prompts per generate call (default: the sweep's)")
    predict.add_argument("--num-prompts", default=None, help="how many prompts (default: the sweep's)")
    predict.add_argument("--max-new-tokens", default=None, help="new tokens per prompt (default: the sweep's)")
    predict.add_argument("--json", action="store_true", help="print the predictions as JSON")
    add_db_option(predict)
    predict.set_defaults(func=cmd_predict)

    present = sub.add_parser("present", help="write a sweep as a self-contained presentation (HTML deck)")
    present.add_argument("sweep", help="sweep id (see `studio runs`), or ref:batched / ref:simple")
    present.add_argument("--output", "-o", default=None, help="file to write (default sweep-ID-deck.html)")
    present.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    present.add_argument("--price", default=None, metavar="DOLLARS", help=PRICE_HELP)
    add_db_option(present)
    present.set_defaults(func=cmd_present)

    from studio.cli.recommend import add_recommend_parser

    add_recommend_parser(sub, _sweep_ref)

    reference = sub.add_parser("reference", help="the reference post's published figures as read-only sweeps")
    reference.add_argument("action", choices=["load", "list"], nargs="?", default="list")
    add_db_option(reference)
    reference.set_defaults(func=cmd_reference)

    from studio.cli.deploy import add_deploy_commands

    add_deploy_commands(sub)  # cluster slurm, export, import, doctor

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["serve"]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except ConfigError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
