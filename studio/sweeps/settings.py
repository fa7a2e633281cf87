"""The run settings, each declared once.

`SETTINGS` names every setting a sweep takes, with its kind, default, help text,
list-ness and bounds, and says where it is offered: `studio run`'s flags, the Run
tab's fields and /start_sweep's parameters are all built from it. All three make
the same `SweepRequest`; `sweep_args()` turns one into RunConfig and the grid,
which `studio.sweeps.plan.plan_sweep` plans. Torch-free and gradio-free.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from runner.config import (
    ATTENTION,
    CACHES,
    DEVICES,
    DTYPES,
    LARGEST,
    LIMITS,
    MODES,
    ConfigError,
    RunConfig,
    list_items,
    unique,
    whole,
    whole_list,
)
from runner.host.launch_groups import DEFAULT_LAUNCH, LAUNCH_MODES
from runner.host.prompts import MAX_FILE_BYTES, load_prompts, parse_prompts, preset
from runner.host.serving.spec import ENDPOINTS, PROFILES
from runner.host.validate import remote_code_allowed

CLI, FORM, API = "cli", "form", "api"
EVERYWHERE = frozenset({CLI, FORM, API})
TEXT, CHOICE, FLAG, WHOLE, NUMBER, WHOLES, CHOICES, FILE = (
    "text", "choice", "flag", "whole", "number", "wholes", "choices", "file")
SYNTHETIC_PROMPTS = 100  # how many synthetic prompts a sweep makes when no count is given
_SAME = "<the setting's own name>"


@dataclass(frozen=True)
class Setting:
    name: str  # the API parameter, the form field and the CLI flag's dest
    kind: str  # one of TEXT ... FILE: how a value is read and which widget or flag type offers it
    default: Any
    help: str
    where: frozenset = EVERYWHERE
    flags: tuple[str, ...] = ()  # CLI flags; the first is shown, the others stay accepted
    config: str | None = _SAME  # the RunConfig field it fills; None where the sweep keeps it (repeats, slo)
    attr: str = ""  # the SweepRequest attribute, where the name would clash (prompts is text, --prompts a file)
    field: str = ""  # the name its refusals carry, where older messages use another one (gpus)
    shows: tuple[str, ...] = ()  # other refusals the page shows next to this field
    choices: tuple[str, ...] = ()
    example: str = "1,8,32"  # what a refusal of a list says to write
    high: str | None = None  # the LIMITS entry bounding it (RunConfig and the planner enforce it)
    label: str = ""  # the Run tab's label
    elem_id: str = ""
    spoken: str = ""  # the setting in a sentence ("max new tokens is empty")
    default_is_axis: bool = True  # False: the default value alone makes no grid axis (tp_size 1)
    api_before: str = ""  # /start_sweep takes values by position: this one keeps its older slot
    cli_group: str = ""  # CLI flags of one group exclude each other

    def __post_init__(self) -> None:
        if self.config == _SAME:
            names = {f.name for f in dataclasses.fields(RunConfig)} - {"prompts"}
            object.__setattr__(self, "config", self.name if self.name in names else None)

    @property
    def key(self) -> str:
        return self.attr or self.name

    @property
    def error_field(self) -> str:
        return self.field or self.name

    @property
    def listed(self) -> bool:
        """A comma list of values is an axis of the sweep's grid."""
        return self.kind in (WHOLES, CHOICES)

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def help_text(self) -> str:
        return f"{self.help} (at most {LIMITS[self.high]})" if self.high else self.help

    @property
    def form_label(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def form_id(self) -> str:
        return self.elem_id or self.name.replace("_", "-")

    @property
    def api_type(self) -> Any:
        """The type /gradio_api/info gives: a list setting is offered as its default's type."""
        if self.kind == FLAG:
            return bool
        if self.kind == WHOLE:
            return int if self.default is not None else int | None
        if self.kind == WHOLES:
            return type(self.default)
        return str

    def values(self, value) -> list:
        """A list setting's values from '1,8,32', a list or one value (runner.config.whole_list:
        capped before it is split, ASCII digits, each value once)."""
        if self.kind == WHOLES:
            return whole_list(self.error_field, value, 1, example=self.example)
        items = list_items(self.error_field, value, ",".join(self.choices[:2]))
        for item in items:
            if not isinstance(item, str) or item not in self.choices:
                raise ConfigError(self.error_field, f"{item!r} is not one of {', '.join(self.choices)}; it must be one "
                                  "of them, or a comma list of them")
        return unique(self.error_field, items)

    def number(self, value) -> int:
        """One whole number; gradio gives floats, or None for an empty box. The bounds are
        RunConfig's and the planner's, checked there with the setting's own words."""
        if value is None or value == "":
            raise ConfigError(self.error_field, f"{self.spoken or self.name.replace('_', ' ')} is empty; write a "
                              "whole number")
        return whole(self.error_field, value, -LARGEST, LARGEST, example="16")

    def read_list(self, value) -> list | None:
        """A list setting as a request holds it: None where it is not set."""
        if self.kind == CHOICES or isinstance(value, (list, tuple)) or (isinstance(value, str) and value.strip()):
            return self.values(value)
        if isinstance(self.default, int):  # offered as a number: one number, or an empty box
            return [self.number(value)]
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.error_field, f"must be text, got {type(value).__name__} {value!r}")
        return self.values(value)


SETTINGS = (
    Setting("prompts", TEXT, "", "the prompts, one a line (or JSON lines or CSV text: see prompts_format)",
            where=frozenset({FORM, API}), config=None, attr="prompts_text", label="Prompts, one a line",
            shows=("preset",)),
    Setting("preset", TEXT, "", "a built-in prompt set instead of the prompts: seed (the reference post's 10 lines x10)",
            where=frozenset({CLI, API}), cli_group="prompt source"),
    # a short label: a long one wraps on a phone and runs over "Drop File Here"
    Setting("prompts_file", FILE, None, "a prompts file: .txt (one a line), .jsonl or .csv (a 'prompt' field)",
            where=frozenset({CLI, FORM}), flags=("--prompts",), label="…or upload a file", elem_id="prompt-file",
            cli_group="prompt source"),
    Setting("model", TEXT, "tiny", "tiny (built in, tiny and fast) · arch:NAME (a real architecture with random "
            "weights) · a local model folder · a cached hub id", shows=("trust_remote_code",)),
    Setting("mode", CHOICES, "batched", "simple: one prompt at a time · batched: batch size prompts at once · auto: "
            "the planner picks the batches; or a comma list of them", choices=MODES),
    Setting("batch_size", WHOLES, 16, "prompts per generate call, or a list such as 1,8,32", high="batch_size",
            label="Batch size(s)"),
    Setting("max_new_tokens", WHOLES, 100, "new tokens per prompt, or a list such as 8,32", high="max_new_tokens"),
    Setting("fixed_length", FLAG, False, "generate exactly max new tokens every time",
            label="Fixed length"),
    Setting("dtype", CHOICES, "auto", "auto | float32 | bfloat16 | float16, or a comma list of them", choices=DTYPES,
            shows=("device",), label="dtype"),
    Setting("gpu_counts", WHOLES, "1", "GPU counts to sweep, e.g. 1,2,4 (CPU processes without a GPU)",
            flags=("--gpus",), config="gpus_per_node", field="gpus", shows=("gpus_per_node",), example="1,2,4",
            label="GPU counts to sweep"),
    Setting("repeats", WHOLE, 1, "runs of each cell of the grid", shows=("grid",), high="repeats",
            label="Repeats per cell"),
    Setting("name", TEXT, "", "a name for the sweep", config="label", shows=("label",), label="Sweep name (optional)",
            elem_id="sweep-name"),
    Setting("prompts_format", CHOICE, "txt", "how prompts is written: txt (one a line), jsonl or csv",
            where=frozenset({API}), choices=("txt", "jsonl", "csv")),
    Setting("prompt_tokens", WHOLES, "", "synthetic prompts of exactly N tokens (or a list of N) instead of the prompts",
            label="Prompt tokens (one, or a list)"),
    Setting("num_prompts", WHOLE, None, f"how many synthetic prompts to make, with prompt tokens; "
            f"{SYNTHETIC_PROMPTS} unless given", high="num_prompts", label="How many synthetic prompts",
            spoken="number of prompts"),
    Setting("slo", TEXT, "", "latency limits for goodput: ttft=MS,tpot=MS, or mlperf-llama2-70b (TTFT 2000 ms, "
            "TPOT 200 ms)", label="Latency limits for goodput (optional)"),
    Setting("launch", CHOICE, DEFAULT_LAUNCH, "shared: runs of one model load it once, in one launch (smaller GPU "
            "counts on a sub-group of its ranks); per-run: a launch of its own for every run", choices=LAUNCH_MODES,
            label="Launches"),
    Setting("tp_size", WHOLES, "1", "tensor-parallel sizes: ranks that share one copy of the model, 1 (a replica per "
            "GPU) or a list such as 1,2 to compare layouts; each GPU count runs with the sizes that divide it",
            flags=("--tp-size", "--tp"), example="1,2", default_is_axis=False, api_before="launch",
            label="Tensor-parallel sizes (tp)"),
    # the server scenario (issue 26, docs/serving.md), checked together by studio.sweeps.server_settings;
    # an engine or a URL from the page or the API needs `studio serve --allow-engines` (runner.host.validate)
    Setting("scenario", CHOICE, "offline", "offline: generate over all prompts at once · server: launch a server per "
            "GPU count and layout and drive it with a load", choices=("offline", "server"), config=None,
            label="Scenario"),
    Setting("engine", TEXT, "", "server scenario: the server's command template, with {model} {port} {tp} {dp} "
            "{gpus} (default: transformers serve {model} --port {port} --continuous-batching)", config=None,
            label="Engine command (optional)"),
    Setting("url", TEXT, "", "server scenario: the address of a server someone else runs (nothing is launched, no "
            "GPU sweep)", config=None,
            label="Server URL (optional)"),
    Setting("profile", CHOICE, "sweep", "server scenario: the load: synchronous · concurrency · constant · poisson "
            "(at the rates) · sweep (synchronous, max throughput, rates between)", choices=PROFILES, config=None,
            label="Load profile"),
    Setting("rates", TEXT, "", "server scenario: requests per second for the constant and poisson profiles, e.g. "
            "0.5,1,2", config=None,
            label="Rates (requests/s)"),
    Setting("concurrency", WHOLE, 1, "server scenario: requests in flight for the concurrency profile", config=None),
    Setting("endpoint", CHOICE, "completions", "server scenario: the OpenAI endpoint to stream (completions or chat)",
            choices=ENDPOINTS, config=None),
    Setting("requests_per_load", WHOLE, 20, "server scenario: measured requests per load (warm-up and cool-down "
            "aside)", config=None,
            label="Requests per load"),
    # `studio run` only: the page and the API run with RunConfig's defaults
    Setting("device", CHOICE, "auto", "where the ranks run", where=frozenset({CLI}), choices=DEVICES),
    Setting("do_sample", FLAG, False, "sample instead of greedy decoding", where=frozenset({CLI}), flags=("--sample",)),
    Setting("temperature", NUMBER, 1.0, "sampling temperature", where=frozenset({CLI})),
    Setting("top_p", NUMBER, 1.0, "nucleus sampling's probability mass", where=frozenset({CLI})),
    Setting("top_k", WHOLE, 50, "sampling's top-k", where=frozenset({CLI})),
    Setting("seed", WHOLE, 0, "the random seed of sampling and synthetic prompts", where=frozenset({CLI})),
    Setting("warmup", FLAG, True, "skip the warm-up generate", where=frozenset({CLI}), flags=("--no-warmup",)),
    Setting("sort_by_length", FLAG, False, "batch prompts of similar length together", where=frozenset({CLI})),
    Setting("attention", CHOICE, "auto", "the attention implementation", where=frozenset({CLI}), choices=ATTENTION),
    Setting("cache", CHOICE, "dynamic", "the KV cache", where=frozenset({CLI}), choices=CACHES),
    Setting("compile", FLAG, False, "torch.compile the model (needs --cache static)", where=frozenset({CLI})),
    Setting("continuous_batching", FLAG, False, "transformers' continuous batching (generate_batch), greedy only",
            where=frozenset({CLI})),
    Setting("memory_budget_gb", NUMBER, None, "GiB per GPU/process the auto planner may fill (default: from the "
            "device)", where=frozenset({CLI})),
    Setting("cpu_threads", WHOLE, 1, "threads per CPU process", where=frozenset({CLI}), high="cpu_threads"),
    Setting("timeout_s", NUMBER, 3600.0, "seconds before a run is stopped", where=frozenset({CLI}),
            flags=("--timeout",)),
    Setting("num_nodes", WHOLE, 1, "machines in a multi-node run", where=frozenset({CLI}), flags=("--nodes",),
            high="num_nodes"),
    Setting("gpus_per_node", WHOLE, None, "processes on each node (multi-node; replaces --gpus)",
            where=frozenset({CLI}), config=None),
    Setting("node_rank", WHOLE, 0, "this machine's rank (multi-node)", where=frozenset({CLI})),
    Setting("main_address", TEXT, "127.0.0.1", "the rank-0 machine's address (multi-node)", where=frozenset({CLI})),
    Setting("main_port", WHOLE, None, "the rank-0 machine's port (multi-node)", where=frozenset({CLI})),
    Setting("rdzv_backend", CHOICE, "static", "torchrun's rendezvous (multi-node)", where=frozenset({CLI}),
            choices=("static", "c10d")),
)
BY_NAME = {s.name: s for s in SETTINGS}
# the order a grid's cells vary in, the GPU count slowest; a list setting added later varies fastest
_CELL_ORDER = ("gpus_per_node", "tp_size", "batch_size", "max_new_tokens", "prompt_tokens", "dtype", "mode")
AXES = tuple(sorted((s.config for s in SETTINGS if s.listed),
                    key=lambda a: _CELL_ORDER.index(a) if a in _CELL_ORDER else len(_CELL_ORDER)))
AXIS_SETTING = {s.config: s for s in SETTINGS if s.listed}


def offered(where: str) -> list[Setting]:
    """The settings one surface offers, in the order it takes them."""
    chosen = [s for s in SETTINGS if where in s.where]
    if where == API:  # clients send /start_sweep's values as a list: each keeps the slot it was added in
        for setting in [s for s in chosen if s.api_before]:
            chosen.remove(setting)
            chosen.insert(next(i for i, s in enumerate(chosen) if s.name == setting.api_before), setting)
    return chosen


def whole_arg(text: str) -> int:
    """argparse's type for whole-number flags: int() would also read '１' and '٣'.
    The bounds are the setting's own, checked where it is used."""
    try:
        return whole("value", text, -LARGEST)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


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


class _Request:
    """What a sweep is asked with, from any surface; the fields are SETTINGS' (see SweepRequest)."""

    from_cli: bool

    def axes(self) -> dict[str, list]:
        """The grid: each list setting's values under its RunConfig field, in AXES order."""
        axes = {}
        for axis in AXES:
            setting = AXIS_SETTING[axis]
            value = getattr(self, setting.key)
            values = self.gpu_counts_of(value) if axis == "gpus_per_node" else setting.read_list(value)
            if values is None or (not setting.default_is_axis and values == [int(setting.default)]):
                continue
            axes[axis] = values
        return axes

    def gpu_counts_of(self, value) -> list[int]:
        gpus = BY_NAME["gpu_counts"]
        if value is None or (isinstance(value, (list, tuple)) and not value):
            raise ConfigError(gpus.error_field, "no GPU count chosen; tick at least one")
        if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
            raise ConfigError(gpus.error_field, f"write GPU counts as a comma list such as '1,2,4', got {value!r}")
        counts = gpus.values(value)
        # the page's boxes come in the order they were ticked; a typed --gpus list runs as typed
        return counts if self.from_cli else sorted(counts)

    def repeats_count(self) -> int:
        return BY_NAME["repeats"].number(self.repeats)

    def synthetic_count(self) -> int:
        return SYNTHETIC_PROMPTS if self.num_prompts in (None, "") else BY_NAME["num_prompts"].number(self.num_prompts)

    def sweep_args(self) -> dict:
        """RunConfig (each list's first value), the grid and the sweep's own settings, as
        plan_sweep takes them; raises ConfigError naming the setting at the first bad one."""
        axes = self.axes()
        synthetic = "prompt_tokens" in axes
        prompts = (["(synthetic)"] if synthetic else
                   collect_prompts(self.prompts_text, self.prompts_file, self.preset, self.prompts_format))
        repeats = self.repeats_count()
        num_prompts = self.synthetic_count() if synthetic else None
        if self.from_cli and not synthetic:
            num_prompts = self.num_prompts  # given without --prompt-tokens: plan_sweep says what it goes with
        name = (self.name or "").strip()
        config = {"prompts": prompts, "label": name,
                  # on only when the server was started with --trust-remote-code; `studio run` never
                  "trust_remote_code": not self.from_cli and remote_code_allowed()}
        for setting in SETTINGS:
            if setting.config in config or setting.config is None:
                continue
            if setting.listed:
                if setting.config in axes:
                    config[setting.config] = axes[setting.config][0]
            else:
                value = getattr(self, setting.key)
                config[setting.config] = bool(value) if setting.kind == FLAG else value
        tps = axes.get("tp_size", [])
        # one --tp-size is the run's own, held to the node's GPUs by RunConfig; the page's and the
        # API's sizes, a list or not, are the grid's, held to the GPU counts by the grid
        config["tp_size"] = tps[0] if self.from_cli and len(tps) == 1 else 1
        return {"base": RunConfig(**config), "axes": axes, "repeats": repeats, "name": name,
                "num_prompts": num_prompts, "slo": (self.slo or "").strip() or None,
                "launch": self.launch or DEFAULT_LAUNCH}

    def key(self) -> tuple:
        """The request's values, hashable: two requests with the same key plan the same sweep."""
        def frozen(value):
            return tuple(frozen(v) for v in value) if isinstance(value, (list, tuple)) else value
        return tuple((f.name, frozen(getattr(self, f.name))) for f in dataclasses.fields(self))

    @classmethod
    def add_cli_args(cls, parser: argparse.ArgumentParser) -> None:
        """`studio run`'s flags for the settings offered on the command line."""
        groups: dict[str, Any] = {}
        for s in offered(CLI):
            if s.cli_group and s.cli_group not in groups:
                groups[s.cli_group] = parser.add_mutually_exclusive_group()
            target = groups[s.cli_group] if s.cli_group else parser
            options: dict[str, Any] = {"dest": s.key, "default": s.default, "help": s.help_text}
            if s.kind == FLAG:
                options["action"] = "store_false" if s.default else "store_true"
            elif s.kind == CHOICE:
                options["choices"] = list(s.choices)
            else:
                options["type"] = {WHOLE: whole_arg, NUMBER: float}.get(s.kind, str)
                options["metavar"] = "FILE" if s.kind == FILE else s.cli_flags[0].lstrip("-").replace("-", "_").upper()
            target.add_argument(*s.cli_flags, **options)

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> _Request:
        values = {s.key: getattr(args, s.key) for s in offered(CLI)}
        if values["prompt_tokens"] not in (None, ""):
            if values["prompts_file"] or values["preset"]:
                raise ConfigError("prompt_tokens", "makes synthetic prompts; leave out --prompts and --preset")
        elif not values["prompts_file"] and not values["preset"]:
            values["preset"] = "seed"
        if values["num_nodes"] > 1 or values["gpus_per_node"]:
            values["gpu_counts"] = [values["gpus_per_node"] or 1]
        return cls(**values, from_cli=True)


def request_class() -> type:
    """SweepRequest: one field per setting, with the setting's default; `from_cli` marks a
    request from `studio run`, the one surface whose reading differs (gpu_counts_of, sweep_args)."""
    fields = [(s.key, Any, dataclasses.field(default=s.default)) for s in SETTINGS]
    made = dataclasses.make_dataclass("SweepRequest", [*fields, ("from_cli", bool, dataclasses.field(default=False))],
                                      bases=(_Request,), namespace={"__module__": __name__})
    made.__doc__ = "Everything a sweep is asked with: the Run tab's fields, /start_sweep's or `studio run`'s."
    return made


SweepRequest = request_class()
