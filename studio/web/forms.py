"""The Run tab's side of a sweep request, torch-free and gradio-free: the form's
fields and where a refusal is shown (both from studio.sweeps.settings), what each
scenario hides, and the lines under the inputs.

A setting refused in the browser is refused the same way for `gradio_client`
and the CLI: every surface makes a `SweepRequest` and plans it with `plan_request`.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.config import ConfigError
from runner.host.hardware import detect
from runner.host.prompts import preset
from runner.models import arch_names
from studio.analysis.serving import layout_words
from studio.sweeps.grid import LABELS as GRID_LABELS
from studio.sweeps.grid import MAX_RUNS, cell_count, parse_axis
from studio.sweeps.plan import plan_request
from studio.sweeps.server_settings import is_server, server_plan
from studio.sweeps.settings import BY_NAME, FORM, SYNTHETIC_PROMPTS, SweepRequest, collect_prompts, offered

__all__ = ["SweepRequest", "SYNTHETIC_PROMPTS", "collect_prompts", "plan_request", "cell_count"]

# The Run tab's inputs, in the order its events receive them. A refusal is shown next to
# the field of its setting, or of the setting that `shows` it (a bad --device next to dtype).
FORM_SETTINGS = offered(FORM)
FORM_FIELDS = tuple(s.name for s in FORM_SETTINGS)
FIELD_OF_ERROR = {field: s.name for s in FORM_SETTINGS for field in (s.name, s.error_field, *s.shows)}
# The page names a setting by its field's label: max_new_tokens is the API's name and
# --batch-size the CLI's, and neither is written on the page (issue 24 item 8).
PAGE_NAMES = {field: s.form_label for s in FORM_SETTINGS for field in (s.name, s.error_field)}


# what the page hides in the server scenario: a server batches as its engine does, each load runs once,
# and the engine picks the dtype (studio.sweeps.server_settings refuses the first ones from the CLI)
OFFLINE_FIELDS = ("mode", "batch_size", "fixed_length", "dtype", "repeats", "prompt_tokens", "num_prompts", "launch")
SERVER_FIELDS = ("engine", "url", "profile", "rates", "concurrency", "endpoint", "requests_per_load")


# the fields whose values decide what is hidden, and those shown or hidden by them
SCOPE_FIELDS = ("scenario", "profile", "url")
TOGGLED_FIELDS = tuple(name for name in OFFLINE_FIELDS + SERVER_FIELDS + ("gpu_counts", "tp_size")
                       if name not in ("profile", "url"))


def hidden_fields(values: dict) -> set[str]:
    """The fields the page hides for the scenario, profile and URL chosen: what is hidden
    is not sent (form_request), so a value typed before a switch cannot refuse the sweep."""
    if values.get("scenario") != "server":
        return set(SERVER_FIELDS)
    hidden = set(OFFLINE_FIELDS)
    if values.get("profile") not in ("constant", "poisson"):
        hidden.add("rates")
    if values.get("profile") != "concurrency":
        hidden.add("concurrency")
    if (values.get("url") or "").strip():  # a server someone else runs: nothing is launched here
        hidden |= {"gpu_counts", "tp_size", "engine"}
    return hidden


def form_request(values: dict) -> SweepRequest:
    """The form's values, by field name, as a request; hidden fields keep their defaults."""
    hidden = hidden_fields(values)
    return SweepRequest(**{BY_NAME[name].key: BY_NAME[name].default if name in hidden else value
                           for name, value in values.items()})


def request_axes(request: SweepRequest) -> dict[str, list]:
    return request.axes()


def server_summary(request: SweepRequest) -> str:
    """The server scenario's line: its cells and the load each gets."""
    try:
        plan = server_plan(request)
    except ConfigError as exc:
        return f"⚠ {page_message(exc)}"
    where = f"the server at {plan.settings['url']}" if plan.settings["url"] else " · ".join(
        layout_words(c.gpus, c.tp_size, c.replicas) for c in plan.cells)
    cell = plan.cells[0]
    load = {"sweep": "a sweep of loads (synchronous, the most it serves, rates between)",
            "constant": f"a constant load at each of {len(cell.rates)} rate(s)",
            "poisson": f"a Poisson load at each of {len(cell.rates)} rate(s)",
            "concurrency": f"{cell.concurrency} request(s) in flight"}.get(cell.profile, "one request at a time")
    return (f"Server scenario: **{len(plan.cells)} cell(s)** ({where}), each {load}, "
            f"{cell.requests_per_load} measured requests a load")


def grid_summary(request: SweepRequest) -> str:
    """One line saying how many runs the form makes, before any of it is validated in full."""
    if is_server(request):
        return server_summary(request)
    try:
        axes = request.axes()
        repeats = request.repeats_count()
        cells = cell_count(axes)
    except ConfigError as exc:
        return f"⚠ {page_message(exc)}"
    parts = " × ".join(f"{len(v)} {GRID_LABELS[a]}" for a, v in axes.items() if len(v) > 1) or "1 setting"
    if len(axes.get("tp_size", [])) > 1:
        parts += " (each GPU count with the tp sizes that divide it)"
    elif "tp_size" in axes:
        parts += f", tp {axes['tp_size'][0]}"
    line = f"Grid: {parts} = {cells} cell(s) × {repeats} repeat(s) = **{cells * repeats} run(s)**"
    if cells * repeats > MAX_RUNS:
        line += f" — more than the limit of {MAX_RUNS}"
    return line


def form_field(error: ConfigError) -> str:
    """Which Run-tab field an error belongs next to."""
    return FIELD_OF_ERROR.get(error.field, "prompts")


def field_message(error: ConfigError) -> str:
    """The error with its field named as the API names it (max_new_tokens, gpus, ...)."""
    return f"{error.field}: {error.message}"


def page_message(error: ConfigError, names: dict[str, str] | None = None) -> str:
    """The error as the page says it: the setting named by its label (PAGE_NAMES, or the
    tab's own `names`), where the CLI and the API keep their flag and parameter names."""
    name = (names or {}).get(error.field) or PAGE_NAMES.get(error.field, error.field)
    return f"{name}: {error.message}"


def problems_of(error: ConfigError) -> dict[str, str]:
    target = form_field(error)
    # next to its own field the field's name is noise; next to another one it is needed
    return {target: error.message if FIELD_OF_ERROR.get(error.field) == target and error.field in PAGE_NAMES
            else page_message(error)}


def check_request(request: SweepRequest) -> dict[str, str]:
    """{form field: message} for the page's per-field validation; empty when all is well."""
    try:
        plan_request(request)
    except ConfigError as exc:
        return problems_of(exc)
    return {}


def prompt_summary(text: str | None, file_path: str | None, prompt_tokens=None, num_prompts=None) -> str:
    """One line under the prompt inputs saying what a Run would use: synthetic
    prompts, when a prompt length is set, replace the box and the file."""
    if prompt_tokens not in (None, "", []):
        try:
            lengths = ", ".join(str(n) for n in parse_axis("prompt_tokens", prompt_tokens))
            count = SweepRequest(prompt_tokens=prompt_tokens, num_prompts=num_prompts).synthetic_count()
        except ConfigError as exc:
            return f"⚠ {page_message(exc)}"
        return (f"{count} synthetic prompts of {lengths} tokens each (Prompt tokens is set: the text box "
                "and any file are not used).")
    try:
        prompts = collect_prompts(text, file_path)
    except ConfigError as exc:
        if not file_path and not (text or "").strip():
            return "No prompts yet: write one a line, upload a file, or load the reference preset."
        return f"⚠ {exc.message}"
    source = f"the file {file_path.rsplit('/', 1)[-1]}" if file_path else "the text box"
    longest = max(len(p) for p in prompts)
    return f"{len(prompts)} prompt(s) from {source}; the longest has {longest} characters."


def preset_text(name: str = "seed") -> str:
    return "\n".join(preset(name))


def device_choices() -> dict:
    """What the GPU-count boxes offer: GPUs when there are any, else CPU processes."""
    inventory = detect()
    device = inventory.default_device
    limit = inventory.max_processes(device)
    what = "GPUs" if device == "cuda" else "CPU processes (no GPU found)"
    return {"device": device, "max": limit, "counts": list(range(1, limit + 1)), "what": what}


def model_choices() -> list[str]:
    """What the model box offers: tiny, the shipped architectures, model folders under
    STUDIO_MODEL_DIRS and hub ids already in the Hugging Face cache. Any other value
    may still be typed; it is checked like the rest."""
    choices = ["tiny"] + [f"arch:{name}" for name in arch_names()]
    for root in [p for p in os.environ.get("STUDIO_MODEL_DIRS", "").split(os.pathsep) if p.strip()]:
        try:
            choices += sorted(str(d) for d in Path(root).iterdir() if (d / "config.json").is_file())
        except OSError:
            continue
    try:  # a directory listing only: scanning the cache would read every file's metadata
        from huggingface_hub import constants

        cached = Path(constants.HF_HUB_CACHE)
        choices += sorted(d.name[len("models--"):].replace("--", "/", 1) for d in cached.iterdir()
                          if d.name.startswith("models--") and "--" in d.name[len("models--"):])
    except (ImportError, OSError):
        pass
    return choices
