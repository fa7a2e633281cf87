"""The Run tab's form and the API's start_sweep: values in, a validated sweep
plan out. Torch-free.

A setting refused in the browser is refused the same way for `gradio_client`
and the CLI: every path ends in `RunConfig` and `plan_sweep`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runner.config import LARGEST, ConfigError, RunConfig, whole
from runner.host.hardware import detect
from runner.host.launch_groups import DEFAULT_LAUNCH
from runner.host.prompts import MAX_FILE_BYTES, load_prompts, parse_prompts, preset
from runner.host.validate import remote_code_allowed
from runner.models import arch_names
from studio.sweeps.grid import LABELS as GRID_LABELS
from studio.sweeps.grid import MAX_RUNS, cell_count, parse_axis
from studio.sweeps.plan import SweepPlan, parse_gpu_counts, plan_sweep

# The page's settings, in the order the Run tab lays them out. A ConfigError's
# field is mapped onto one of these so its message appears next to that field.
FORM_FIELDS = ("prompts", "model", "mode", "batch_size", "max_new_tokens", "fixed_length", "dtype",
               "gpu_counts", "repeats", "name", "prompt_tokens", "num_prompts", "slo", "launch", "tp")
FIELD_OF_ERROR = {
    "prompts": "prompts", "preset": "prompts", "model": "model", "trust_remote_code": "model", "mode": "mode",
    "batch_size": "batch_size", "max_new_tokens": "max_new_tokens", "fixed_length": "fixed_length",
    "dtype": "dtype", "device": "dtype", "gpus_per_node": "gpu_counts", "gpus": "gpu_counts", "repeats": "repeats",
    "label": "name", "name": "name", "grid": "repeats", "prompt_tokens": "prompt_tokens",
    "num_prompts": "num_prompts", "slo": "slo", "launch": "launch", "tp": "tp", "tp_size": "tp",
}

@dataclass
class SweepRequest:
    """Everything the Run tab (or an API call) sends to start a sweep."""

    prompts_text: str = ""
    prompts_file: str | None = None
    preset: str = ""
    prompts_format: str = "txt"  # how prompts_text is written: txt (one a line), jsonl or csv
    model: str = "tiny"
    mode: str = "batched"
    batch_size: int | float | None = 16
    max_new_tokens: int | float | None = 100
    fixed_length: bool = False
    dtype: str = "auto"
    gpu_counts: str | list = "1"
    repeats: int | float | None = 1
    name: str = ""
    # grid sweeps: batch_size and max_new_tokens may also be lists ("1,8,32"); synthetic prompts
    # of an exact token count replace the prompts when prompt_tokens is given
    prompt_tokens: str | int | list | None = ""
    num_prompts: int | float | None = None
    slo: str = ""
    # shared: runs holding the same model share one launch; per-run: a launch of its own for each
    launch: str = DEFAULT_LAUNCH
    # layouts: tensor-parallel sizes ("1,2"); each GPU count runs with the sizes that divide it
    tp: str | int | list | None = "1"


def _whole(name: str, value, label: str) -> int:
    """A number field as an int; gradio gives floats, or None for an empty box. The
    bounds are RunConfig's, checked there with the setting's own words."""
    if value is None or value == "":
        raise ConfigError(name, f"{label} is empty; write a whole number")
    return whole(name, value, -LARGEST, LARGEST, example="16")


def collect_prompts(text: str | None, file_path: str | None = None, preset_name: str = "",
                    text_format: str = "txt") -> list[str]:
    """Prompts from, in this order of precedence, an uploaded file, a preset, the text box."""
    if file_path:
        return load_prompts(file_path)
    if preset_name:
        return preset(preset_name)
    text = text or ""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise ConfigError("prompts", f"the prompts are larger than {MAX_FILE_BYTES // 2**20} MiB; send fewer")
    if not text.strip():
        raise ConfigError("prompts", "no prompts: write one prompt a line, upload a file or load the preset")
    if text_format not in ("txt", "jsonl", "csv"):
        raise ConfigError("prompts", f"unknown prompts format {text_format!r}; use txt, jsonl or csv")
    return parse_prompts(text, text_format, source="the prompts")


def gpu_counts_of(value: str | list | tuple | None) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        raise ConfigError("gpus", "no GPU count chosen; tick at least one")
    if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
        raise ConfigError("gpus", f"write GPU counts as a comma list such as '1,2,4', got {value!r}")
    return sorted(parse_gpu_counts(value))


def _values(axis: str, value, label: str) -> list:
    """One setting as a list: a comma list typed in a box, a JSON list, or a single number."""
    if isinstance(value, (list, tuple)) or (isinstance(value, str) and value.strip()):
        return parse_axis(axis, value)
    return [_whole(axis, value, label)]


def request_axes(request: SweepRequest) -> dict[str, list]:
    axes = {"gpus_per_node": gpu_counts_of(request.gpu_counts),
            "batch_size": _values("batch_size", request.batch_size, "batch size"),
            "max_new_tokens": _values("max_new_tokens", request.max_new_tokens, "max new tokens")}
    if request.prompt_tokens not in (None, "", []):
        axes["prompt_tokens"] = parse_axis("prompt_tokens", request.prompt_tokens)
    # an empty list is a choice of no size, not of the default; only a blank box means 1
    tps = [1] if request.tp in (None, "") else parse_axis("tp_size", request.tp)
    if tps != [1]:
        axes["tp_size"] = tps
    # dtype and mode take comma lists here as they do on the CLI ("auto,float32")
    for axis, value in (("dtype", request.dtype), ("mode", request.mode)):
        values = parse_axis(axis, value)
        if len(values) > 1:
            axes[axis] = values
    return axes


def plan_request(request: SweepRequest) -> SweepPlan:
    """Validate the whole sweep; raises ConfigError before anything is stored or launched."""
    axes = request_axes(request)
    synthetic = "prompt_tokens" in axes
    prompts = (["(synthetic)"] if synthetic else
               collect_prompts(request.prompts_text, request.prompts_file, request.preset, request.prompts_format))
    repeats = _whole("repeats", request.repeats, "repeats")
    name = (request.name or "").strip()
    num_prompts = None
    if synthetic:
        num_prompts = 100 if request.num_prompts in (None, "") else _whole("num_prompts", request.num_prompts,
                                                                           "number of prompts")
    config = RunConfig(
        prompts=prompts, model=(request.model or "").strip(), mode=axes.get("mode", [request.mode])[0],
        batch_size=axes["batch_size"][0], max_new_tokens=axes["max_new_tokens"][0],
        gpus_per_node=axes["gpus_per_node"][0], dtype=axes.get("dtype", [request.dtype])[0],
        fixed_length=bool(request.fixed_length),
        label=name, prompt_tokens=axes["prompt_tokens"][0] if synthetic else None,
        # on only when the server was started with --trust-remote-code
        trust_remote_code=remote_code_allowed(),
    )
    return plan_sweep(config, axes, repeats, name=name, num_prompts=num_prompts,
                      slo=(request.slo or "").strip() or None, launch=request.launch or DEFAULT_LAUNCH)


def grid_summary(request: SweepRequest) -> str:
    """One line saying how many runs the form makes, before any of it is validated in full."""
    try:
        axes = request_axes(request)
        repeats = _whole("repeats", request.repeats, "repeats")
        cells = cell_count(axes)
    except ConfigError as exc:
        return f"⚠ {field_message(exc)}"
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


def check_request(request: SweepRequest) -> dict[str, str]:
    """{form field: message} for the page's per-field validation; empty when all is well."""
    try:
        plan_request(request)
    except ConfigError as exc:
        target = form_field(exc)
        # next to its own field the field's name is noise; next to another one it is needed
        return {target: exc.message if exc.field == target else field_message(exc)}
    return {}


def prompt_summary(text: str | None, file_path: str | None, prompt_tokens=None, num_prompts=None) -> str:
    """One line under the prompt inputs saying what a Run would use: synthetic
    prompts, when a prompt length is set, replace the box and the file."""
    if prompt_tokens not in (None, "", []):
        try:
            lengths = ", ".join(str(n) for n in parse_axis("prompt_tokens", prompt_tokens))
            count = 100 if num_prompts in (None, "") else _whole("num_prompts", num_prompts, "number of prompts")
        except ConfigError as exc:
            return f"⚠ {field_message(exc)}"
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
