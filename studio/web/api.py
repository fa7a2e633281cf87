"""The studio's HTTP API for `gradio_client`: one typed function per action.

Each endpoint is a `gr.api` function (no components), so a client sends plain
values and gets plain JSON back. They call the same handlers as the page, so an
API call is validated on the server exactly like a click in the browser.

No `from __future__ import annotations` here: gradio reads these type hints at
runtime to describe the endpoints.
"""

import functools
import inspect

import gradio as gr

from db.store import Store
from runner.config import ConfigError
from studio.web import forms, history, views
from studio.web.params import boolean, id_list, optional_id, record_id, text, whole_number


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


def register_api(supervisor, store: Store) -> None:
    """Add the API endpoints to the gr.Blocks being built."""

    def start_sweep(
        prompts: str = "",
        preset: str = "",
        model: str = "tiny",
        mode: str = "batched",
        batch_size: int = 16,
        max_new_tokens: int = 100,
        fixed_length: bool = False,
        dtype: str = "auto",
        gpu_counts: str = "1",
        repeats: int = 1,
        name: str = "",
        prompts_format: str = "txt",
        prompt_tokens: str = "",
        num_prompts: int | None = None,
        slo: str = "",
        tp: str = "1",
        launch: str = "shared",
    ) -> dict:
        """Validate and queue a sweep. prompts: one a line (or jsonl/csv text, see prompts_format);
        preset: 'seed' for the reference post's 100 prompts instead; gpu_counts: e.g. '1,2,4'.
        batch_size, max_new_tokens and prompt_tokens also take lists ('1,8,32'): the sweep runs the grid.
        prompt_tokens: synthetic prompts of exactly that many tokens (num_prompts of them, default 100);
        slo: 'ttft=MS,tpot=MS' or 'mlperf-llama2-70b', for goodput.
        tp: tensor-parallel sizes ('1,2'): each GPU count runs with the sizes that divide it (the layouts).
        launch: 'shared' (default: runs of one model share one launch and one load) or 'per-run'.
        Returns {sweep_id, state, queue_position, runs}; poll sweep_status for progress."""
        request = forms.SweepRequest(
            prompts_text=text("prompts", prompts), preset=text("preset", preset),
            prompts_format=text("prompts_format", prompts_format, "txt"), model=text("model", model, "tiny"),
            mode=text("mode", mode, "batched"), batch_size=batch_size, max_new_tokens=max_new_tokens,
            fixed_length=boolean("fixed_length", fixed_length), dtype=text("dtype", dtype, "auto"),
            gpu_counts=gpu_counts, repeats=repeats, name=text("name", name),
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, (int, list)) else text("prompt_tokens", prompt_tokens),
            num_prompts=num_prompts, slo=text("slo", slo), launch=text("launch", launch, "shared"),
            tp=tp if isinstance(tp, (int, list)) and not isinstance(tp, bool) else text("tp", tp, "1"),
        )
        plan = forms.plan_request(request)
        try:
            sweep_id = supervisor.submit(plan)
        except RuntimeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        status = supervisor.status(sweep_id) or {}
        return {"sweep_id": sweep_id, "state": status.get("state"), "queue_position": status.get("queue_position"),
                "runs": len(plan.order)}

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
                               limit=whole_number("limit", limit, minimum=1, maximum=10_000), **filters)
        return [history.run_public(r) for r in runs]

    def list_sweeps(limit: int = 100) -> list[dict]:
        """Stored sweeps, newest first, with their settings and run counts; `sweep_id` is the id the other
        endpoints take (`id`, the same number, is kept for clients written before it)."""
        sweeps = store.list_sweeps(limit=whole_number("limit", limit, minimum=1, maximum=10_000))
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
        return views.compare_points(history.selected_runs(store, sweep_ids, run_ids))

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

    def import_results(files: dict | None = None, labels: str = "", slo: str = "") -> dict:
        """Other tools' results ({file name: file text}: GuideLLM, AIPerf, vLLM bench, inference-benchmarker, or
        a studio export); labels 'gpus=8,gpu=H100'; slo 'ttft=MS,tpot=MS'. Returns {imported: [a line per file]}."""
        from studio.web.import_handlers import import_texts

        return import_texts(store, files, text("labels", labels), text("slo", slo))

    for fn in (start_sweep, sweep_status, stop_sweep, list_runs, list_sweeps, get_run, delete_runs, export_runs,
               compare, analyse_sweep, predict, import_results):
        gr.api(refusing(fn), api_name=fn.__name__)
