"""The studio's HTTP API for `gradio_client`: one typed function per action.

Each endpoint is a `gr.api` function (no components), so a client sends plain
values and gets plain JSON back. They call the same handlers as the page, so an
API call is validated on the server exactly like a click in the browser.

No `from __future__ import annotations` here: gradio reads these type hints at
runtime to describe the endpoints.
"""

import functools
import inspect
import json

import gradio as gr

from db.store import Store
from runner.config import ConfigError, whole
from studio.sweeps.plan import plan_request
from studio.sweeps.server_settings import ServerPlan
from studio.sweeps.settings import API, BY_NAME, CHOICE, CHOICES, FLAG, TEXT, Setting, SweepRequest, offered
from studio.web import forms, history, views
from studio.web.params import boolean, id_list, optional_id, record_id, text


def refuse(exc: ConfigError) -> gr.Error:
    return gr.Error(forms.field_message(exc), print_exception=False)


def refusing(fn):
    """A ConfigError anywhere in an endpoint reaches the client as its message, the
    argument named, never as a bare "Error"."""
    @functools.wraps(fn)
    def endpoint(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise refuse(exc) from None

    return endpoint


def refuse_missing_values(blocks: gr.Blocks) -> None:
    """gradio checks that a call's `data` holds a value for every parameter before any handler
    runs, but refuses with a ValueError, which reaches the client as {"error": null}. The
    same check here refuses with a message saying what to send."""
    check = blocks.validate_inputs

    def validate_inputs(block_fn, inputs):
        wanted = len(block_fn.inputs)
        if getattr(block_fn.fn, "fewest_values", wanted) <= len(inputs) < wanted:
            # a client older than the endpoint's later parameters sends fewer: they take their
            # defaults (gradio preprocesses this same list next)
            later = list(inspect.signature(block_fn.fn).parameters.values())[len(inputs):]
            inputs.extend(p.default for p in later)
        if len(inputs) < wanted:
            try:
                names = list(inspect.signature(block_fn.fn).parameters)
            except (TypeError, ValueError):
                names = []
            listed = f" ({', '.join(names)})" if len(names) == wanted else ""
            raise gr.Error(f"data: {block_fn.name or 'this call'} takes {wanted} value(s){listed}, in that order; "
                           f"got {len(inputs)}. Send one for each, as /gradio_api/info lists them",
                           print_exception=False)
        check(block_fn, inputs)

    blocks.validate_inputs = validate_inputs


def read_parameter(setting: Setting, value):
    """A /start_sweep argument as the type it claims to be: text and booleans are checked
    here, numbers and lists where the request is read (studio.sweeps.settings)."""
    if setting.kind in (TEXT, CHOICE, CHOICES):
        return text(setting.name, value, setting.default)
    if setting.kind == FLAG:
        return boolean(setting.name, value)
    return value


def start_sweep_endpoint(supervisor):
    """/start_sweep, its parameters the settings studio.sweeps.settings offers the API, in
    their positional order, each with its declared default, type and help."""
    settings = offered(API)
    signature = inspect.Signature(
        [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=s.default, annotation=s.api_type)
         for s in settings], return_annotation=dict)

    def start_sweep(*args, **kwargs) -> dict:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        request = SweepRequest(**{BY_NAME[name].key: read_parameter(BY_NAME[name], value)
                                  for name, value in given.arguments.items()})
        plan = plan_request(request)
        try:
            sweep_id = supervisor.submit(plan)
        except RuntimeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        status = supervisor.status(sweep_id) or {}
        # a server sweep's runs are its loads, counted as they run (a sweep profile picks its rates as it goes)
        return {"sweep_id": sweep_id, "state": status.get("state"), "queue_position": status.get("queue_position"),
                "runs": None if isinstance(plan, ServerPlan) else len(plan.order),
                "cells": len(plan.cells) if isinstance(plan, ServerPlan) else len(plan.order)}

    start_sweep.__signature__ = signature
    # the values a client from before the server scenario's settings sends (studio.web.api.refuse_missing_values)
    start_sweep.fewest_values = [s.name for s in settings].index("scenario")
    start_sweep.__annotations__ = {**{s.name: s.api_type for s in settings}, "return": dict}
    start_sweep.__doc__ = (
        "Validate and queue a sweep; poll sweep_status for its progress. A list ('1,8,32') in a setting that takes "
        "one makes the sweep a grid of every combination.\n\nParameters:\n"
        + "\n".join(f"    {s.name}: {s.help_text}" for s in settings)
        + "\n\nReturns:\n    {sweep_id, state, queue_position, runs, cells}")
    return start_sweep


def register_api(supervisor, store: Store) -> None:
    """Add the API endpoints to the gr.Blocks being built."""

    start_sweep = start_sweep_endpoint(supervisor)

    def sweep_status(sweep_id: int | None = None) -> dict:
        """A sweep's state, per-run progress (prompts done / total), results and log tail.
        Without sweep_id: the running sweep, else the latest one this server ran. {} when none."""
        sweep_id = optional_id("sweep_id", sweep_id)
        snapshot, _ = views.load_sweep(supervisor, store, sweep_id)
        if snapshot is None:
            if sweep_id is not None:
                raise gr.Error(f"there is no sweep {sweep_id}", print_exception=False)
            return {}
        return snapshot

    def stop_sweep(sweep_id: int | None = None) -> dict:
        """Stop a sweep (the running one by default): its processes are ended, queued runs never start."""
        sweep_id = optional_id("sweep_id", sweep_id)
        return {"stopped": supervisor.cancel(sweep_id), "sweep_id": sweep_id}

    def list_runs(
        model: str = "",
        mode: str = "",
        batch_size: int | None = None,
        status: str = "",
        since: str = "",
        until: str = "",
        sweep_id: int | None = None,
        limit: int = 100,
        tool: str = "",
        scenario: str = "",
    ) -> list[dict]:
        """Stored runs, newest first, filtered; since/until are dates (YYYY-MM-DD, UTC, until inclusive);
        tool ('guidellm', 'aiperf', 'vllm', 'inference-benchmarker') and scenario ('concurrency 4') for imports."""
        filters = history.history_filters(text("model", model), text("mode", mode), batch_size,
                                          text("status", status), text("since", since), text("until", until))
        runs = store.list_runs(sweep_id=optional_id("sweep_id", sweep_id), tool=text("tool", tool) or None,
                               scenario=text("scenario", scenario) or None,
                               limit=whole("limit", limit, 1, 10_000), **filters)
        return [history.run_public(r) for r in runs]

    def list_sweeps(limit: int = 100) -> list[dict]:
        """Stored sweeps, newest first, with their settings and run counts; `sweep_id` is the id the other
        endpoints take (`id`, the same number, is kept for clients written before it)."""
        sweeps = store.list_sweeps(limit=whole("limit", limit, 1, 10_000))
        return [{"sweep_id": s["id"], **s} for s in sweeps]

    def get_run(run_id: int | None = None) -> dict:
        """One run with everything stored: settings, environment, phases, per-rank figures and outputs."""
        return history.get_run(store, run_id)

    def delete_runs(run_ids: list[int] | None = None, sweep_ids: list[int] | None = None) -> dict:
        """Delete runs, or whole sweeps with their runs. Running or queued runs are refused."""
        supervisor.adopt_orphans()  # a dead owner's runs end here, so they can go
        message = history.delete_selected(supervisor.store, sweep_ids, run_ids)
        supervisor.forget(id_list("sweep_ids", sweep_ids))
        return {"message": message}

    def export_runs(run_ids: list[int] | None = None, sweep_ids: list[int] | None = None,
                    format: str = "csv") -> str:
        """The chosen runs as CSV text (summary columns) or JSON text (everything, outputs included)."""
        runs = history.selected_runs(store, sweep_ids, run_ids)
        return history.export_text(store, runs, text("format", format))

    def compare(sweep_ids: list[int] | None = None, run_ids: list[int] | None = None) -> list[dict]:
        """Per sweep and GPU count: median, min and max tokens/s, speedup, ideal speedup and efficiency."""
        return views.compare_points(history.selected_runs(store, sweep_ids, run_ids), store)

    def analyse_sweep(sweep_id: int | None = None, compare_with: int | None = None) -> dict:
        """Why a sweep scales the way it does: the report JSON of `studio report ID --format json`
        (per-count medians with 95% intervals, speedup, Amdahl and USL fits, quantisation, explanation),
        with an A/B comparison against `compare_with` when given."""
        from studio.reports.report import ReportError, load_analysis, report_json

        sweep_id, compare_with = record_id("sweep_id", sweep_id), optional_id("compare_with", compare_with)
        try:
            analysis = load_analysis(store, sweep_id)
        except ReportError as exc:
            raise ConfigError("sweep_id", str(exc)) from None
        try:
            other = load_analysis(store, compare_with) if compare_with is not None else None
        except ReportError as exc:
            raise ConfigError("compare_with", str(exc)) from None
        return report_json(analysis, other)

    def predict(sweep_id: int | None = None, gpus: str = "", batch_size: int | None = None,
                num_prompts: int | None = None, max_new_tokens: int | None = None) -> dict:
        """What if: tokens/s and seconds for GPU counts ('1,2,4,8') and a batch size, prompt count or new
        tokens the sweep may not have run, each with a low-high interval and `measured` where it was run,
        plus `held_out` (each measured setting predicted from the others). As `studio predict ID --json`."""
        from studio.analysis.what_if import parse_request, predict_stored

        sweep_id = record_id("sweep_id", sweep_id)
        request = parse_request(gpus if isinstance(gpus, list) else text("gpus", gpus), batch_size, num_prompts,
                                max_new_tokens)
        return predict_stored(store, sweep_id, request)

    def recommend(sweep_ids: list[int] | None = None, slo: str = "", price: float | None = None,
                  max_gpus: int | None = None) -> dict:
        """The cheapest GPU count, layout and batch size that meet slo 'ttft=MS,tpot=MS' at the most tokens/s
        per dollar (price per GPU-hour, else the sweep's or the example prices), measured first, predictions
        with their interval where nothing was measured; the sentence, the candidates and the runs behind them.
        As `studio recommend IDS --slo ... --json`."""
        from studio.analysis.cost import parse_price
        from studio.analysis.recommend import recommend_stored
        from studio.sweeps.slo import parse_slo

        ids = id_list("sweep_ids", sweep_ids)
        if not ids:
            raise ConfigError("sweep_ids", "give one or more sweep ids, e.g. [3]")
        limit = None if max_gpus in (None, "") else whole("max_gpus", max_gpus, 1, 1024, example="8")
        answer = recommend_stored(store, ids, parse_slo(text("slo", slo)), parse_price(price), None, limit)
        return json.loads(json.dumps(answer, default=str))

    def import_results(files: dict | None = None, labels: str = "", slo: str = "") -> dict:
        """Other tools' results ({file name: file text}: GuideLLM, AIPerf, vLLM bench, inference-benchmarker, or
        a studio export); labels 'gpus=8,gpu=H100'; slo 'ttft=MS,tpot=MS'. Returns {imported: [a line per file]}."""
        from studio.web.import_handlers import import_texts

        return import_texts(store, files, text("labels", labels), text("slo", slo))

    for fn in (start_sweep, sweep_status, stop_sweep, list_runs, list_sweeps, get_run, delete_runs, export_runs,
               compare, analyse_sweep, predict, recommend, import_results):
        gr.api(refusing(fn), api_name=fn.__name__)
