"""RunConfig: the one validated, frozen description of a benchmark run.

Every entry point (CLI, web page, API, tests) builds a RunConfig; nothing else is
passed to the launcher. Validation happens on construction and every error says
what to change. Checks that need the machine (device count, model folders) live
in `runner.host.validate`, which is torch-free as well.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from runner.layout import tp_fits, tp_sizes_for

MODES = ("simple", "batched", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cuda", "cpu")
ATTENTION = ("auto", "sdpa", "eager")
CACHES = ("dynamic", "static")

# Upper bounds shared by every entry point: they keep one request from tying up
# the hardware for days or filling the disk, not from running real workloads.
LIMITS = {
    "num_prompts": 10_000,
    "prompt_chars": 32_000,
    "max_new_tokens": 8192,
    "batch_size": 1024,
    "gpus_per_node": 64,
    "num_nodes": 64,
    "repeats": 20,
    "timeout_s": 24 * 3600,
    "cpu_threads": 256,
}

# Hub ids and folder names: no leading dash (argv injection), no shell
# metacharacters, no control characters.
_MODEL_RE = re.compile(r"^[A-Za-z0-9_.~/:@+\- ]+$")


# Set by `studio serve`: messages go to remote users, so they name no server folder.
REDACT_ENV = "STUDIO_REDACT_PATHS"


def redact_paths(text: str) -> str:
    """`text` with this machine's folders (home, studio home, model caches, temp, the
    project) replaced by placeholders such as $STUDIO_HOME or ~, for remote users."""
    import tempfile
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    places = {
        os.environ.get("STUDIO_HOME", ""): "$STUDIO_HOME",
        os.environ.get("HF_HOME", ""): "$HF_HOME",
        str(Path.home() / ".cache" / "huggingface"): "$HF_HOME",
        root: "<studio>",
        str(Path(sys.prefix).resolve()): "<python>",
        str(Path(sys.base_prefix).resolve()): "<python>",
        tempfile.gettempdir(): "$TMPDIR",
        str(Path.home()): "~",
    }
    for path, name in sorted(places.items(), key=lambda item: -len(item[0])):
        if path and len(path) > 1:
            text = text.replace(path, name)
    return text


def for_users(text: str | None) -> str | None:
    """Text shown to remote users (errors, stderr tails, logs): redacted when the server asks for it."""
    if text and os.environ.get(REDACT_ENV) == "1":
        return redact_paths(text)
    return text


class ConfigError(ValueError):
    """A setting is wrong; the message says which one and what to change."""

    def __init__(self, field_name: str, message: str):
        if os.environ.get(REDACT_ENV) == "1":
            message = redact_paths(message)
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


# --- whole numbers and lists of them, as every entry point reads them ----------------------
#
# One parser, so the CLI, the page, the API and RunConfig agree on what a number
# is: an int, a float with no fraction, or ASCII digits. Python's int() and the
# regex \d also take '１', '١' and '𝟙', which no user means as a GPU count and
# which no other tool reading the database would. Lists are capped in characters
# and in values before they are split or checked, and duplicates are found with a
# set, so no request costs more than its length.

LARGEST = 2**63 - 1  # SQLite's INTEGER: no stored setting or id is larger
# A grid runs at most 200 runs (studio.sweeps.grid.MAX_RUNS) and every listed value is at
# least one run, so a longer list is always refused; its text is capped to match.
MAX_VALUES = 200
MAX_LIST_CHARS = 4096
_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")


def whole(name: str, value, low: int = 0, high: int = LARGEST, *, example: str = "8",
          text: bool = True, listed: bool = False) -> int:
    """`value` as an int from `low` to `high`, or a ConfigError naming `name` and
    saying what to type. `text=False` refuses strings (RunConfig's typed fields);
    `listed` words the refusal for one value of a comma list."""
    number = None
    if isinstance(value, bool):
        pass  # True is an int to Python, not a number to the user
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif text and isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        if not listed and (value is None or (isinstance(value, str) and not value.strip())):
            raise ConfigError(name, f"is missing; write a whole number such as {example}")
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40] + "…")
        digits = "the digits 0-9 only" if isinstance(value, str) and not value.isascii() else "digits"
        if listed:
            raise ConfigError(name, f"{shown} is not a whole number; write values like {example} ({digits})")
        raise ConfigError(name, f"must be a whole number, got {shown}; write {digits} such as {example}")
    if number < low:
        raise ConfigError(name, f"must be at least {low}, got {number}")
    if number > high:
        raise ConfigError(name, f"must be at most {high}, got {number}")
    return number


def list_items(name: str, value, example: str = "1,8,32") -> list:
    """The items of '1,8,32', of a list, or of a single value, capped before splitting."""
    if isinstance(value, str):
        if len(value) > MAX_LIST_CHARS:
            raise ConfigError(name, f"the list is {len(value)} characters long, more than {MAX_LIST_CHARS}; "
                              f"give at most {MAX_VALUES} values, such as {example}")
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if not items or items == [""]:
        raise ConfigError(name, f"no value given; write one value or a comma list such as {example}")
    if len(items) > MAX_VALUES:
        raise ConfigError(name, f"lists {len(items)} values, more than {MAX_VALUES} (a sweep runs at most "
                          f"{MAX_VALUES} runs); give fewer, such as {example}")
    return items


def unique(name: str, values: list) -> list:
    """`values` unchanged, or refused at the first one listed twice."""
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(name, f"lists {value} twice; give each value once")
        seen.add(value)
    return values


def whole_list(name: str, value, low: int = 1, high: int = LARGEST, example: str = "1,8,32") -> list[int]:
    """Whole numbers from '1,8,32' or a list: each once, each from `low` to `high`."""
    items = list_items(name, value, example)
    return unique(name, [whole(name, item, low, high, example=example, listed=True) for item in items])


def check_model_id(model: str) -> str:
    model = (model or "").strip()
    if not model:
        raise ConfigError("model", "is empty; use 'tiny', a local model folder, a hub id or 'arch:NAME'")
    if len(model) > 512:
        raise ConfigError("model", "is longer than 512 characters")
    if model.startswith("-"):
        raise ConfigError("model", f"{model!r} starts with '-'; a model id never does")
    if not _MODEL_RE.match(model):
        raise ConfigError(
            "model",
            f"{model!r} has characters a model id cannot have; use letters, digits and . _ - / : @ ~ only",
        )
    return model


def _int(name: str, value: Any, low: int, high: int) -> int:
    return whole(name, value, low, high, text=False)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class RunConfig:
    prompts: tuple[str, ...]
    model: str = "tiny"
    mode: str = "batched"
    batch_size: int = 16
    max_new_tokens: int = 100
    gpus_per_node: int = 1  # processes (GPUs) on each node; the world is gpus_per_node * num_nodes
    # ranks that share one copy of the model (tensor parallel); the world holds world_size / tp_size copies
    tp_size: int = 1
    dtype: str = "auto"
    device: str = "auto"
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int = 0
    fixed_length: bool = False
    warmup: bool = True
    sort_by_length: bool = False
    attention: str = "auto"
    cache: str = "dynamic"
    compile: bool = False
    continuous_batching: bool = False  # transformers' generate_batch, one call per rank
    cpu_threads: int = 1
    memory_budget_gb: float | None = None
    timeout_s: float = 3600.0
    # multi-node: this process launches one node's share of num_nodes * gpus_per_node ranks
    num_nodes: int = 1
    node_rank: int = 0
    main_address: str = "127.0.0.1"
    main_port: int | None = None
    rdzv_backend: str = "static"
    trust_remote_code: bool = False
    label: str = ""
    # the exact token count of every prompt when they are synthetic (runner.host.synthetic); None for given prompts
    prompt_tokens: int | None = None
    latency: bool = True  # per-request TTFT/TPOT/latency (runner.metrics); off only to measure what it costs

    def __post_init__(self) -> None:
        prompts = self.prompts
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise ConfigError("prompts", "must be a list of strings, one prompt each")
        if not prompts:
            raise ConfigError("prompts", "the prompt list is empty; give at least one prompt")
        if len(prompts) > LIMITS["num_prompts"]:
            raise ConfigError("prompts", f"{len(prompts)} prompts is more than the limit of {LIMITS['num_prompts']}")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise ConfigError("prompts", f"prompt {i + 1} is not text")
            if not p.strip():
                raise ConfigError("prompts", f"prompt {i + 1} is blank; remove it or write a prompt")
            if len(p) > LIMITS["prompt_chars"]:
                raise ConfigError(
                    "prompts", f"prompt {i + 1} has {len(p)} characters; the limit is {LIMITS['prompt_chars']}"
                )
        object.__setattr__(self, "prompts", tuple(prompts))
        object.__setattr__(self, "model", check_model_id(self.model))
        _choice("mode", self.mode, MODES)
        _choice("dtype", self.dtype, DTYPES)
        _choice("device", self.device, DEVICES)
        _choice("attention", self.attention, ATTENTION)
        _choice("cache", self.cache, CACHES)
        _choice("rdzv_backend", self.rdzv_backend, ("static", "c10d"))
        for name in ("batch_size", "max_new_tokens", "gpus_per_node", "num_nodes", "cpu_threads"):
            object.__setattr__(self, name, _int(name, getattr(self, name), 1, LIMITS[name]))
        object.__setattr__(self, "tp_size", _int("tp_size", self.tp_size, 1, LIMITS["gpus_per_node"]))
        if not tp_fits(self.tp_size, self.gpus_per_node):
            raise ConfigError("tp_size", f"{self.tp_size} does not divide the {self.gpus_per_node} GPUs of a node "
                              f"(a tensor-parallel group stays inside one node); use one of "
                              f"{tp_sizes_for(self.gpus_per_node)}, or a GPU count that {self.tp_size} divides")
        if self.prompt_tokens is not None:
            object.__setattr__(self, "prompt_tokens", _int("prompt_tokens", self.prompt_tokens, 1,
                                                           LIMITS["prompt_chars"]))
        object.__setattr__(self, "top_k", _int("top_k", self.top_k, 0, 100_000))
        object.__setattr__(self, "seed", _int("seed", self.seed, 0, 2**32 - 1))
        object.__setattr__(self, "node_rank", _int("node_rank", self.node_rank, 0, self.num_nodes - 1))
        if self.main_port is not None:
            object.__setattr__(self, "main_port", _int("main_port", self.main_port, 1024, 65535))
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature <= 100:
            raise ConfigError("temperature", f"must be above 0 and at most 100, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ConfigError("top_p", f"must be above 0 and at most 1, got {self.top_p!r}")
        if not isinstance(self.timeout_s, (int, float)) or not 1 <= self.timeout_s <= LIMITS["timeout_s"]:
            raise ConfigError("timeout_s", f"must be between 1 and {LIMITS['timeout_s']} seconds")
        if self.memory_budget_gb is not None and not (
            isinstance(self.memory_budget_gb, (int, float)) and 0 < self.memory_budget_gb <= 100_000
        ):
            raise ConfigError("memory_budget_gb", f"must be a positive number of GiB, got {self.memory_budget_gb!r}")
        if not re.match(r"^[A-Za-z0-9_.:\-]+$", self.main_address or ""):
            raise ConfigError("main_address", f"{self.main_address!r} is not a host name or IP address")
        if self.num_nodes > 1 and self.main_port is None:
            raise ConfigError("main_port", "a multi-node run needs the same --main-port on every node")
        if self.compile and self.cache != "static":
            raise ConfigError("compile", "torch.compile needs the static KV cache; set cache to 'static'")
        if self.continuous_batching is True and (self.cache != "dynamic" or self.compile):
            raise ConfigError("continuous_batching", "manages its own paged KV cache; set cache to 'dynamic' and compile off")
        if self.continuous_batching is True and self.do_sample:
            raise ConfigError("continuous_batching", "runs greedy decoding only; switch sampling off")
        for flag in ("do_sample", "fixed_length", "warmup", "sort_by_length", "compile", "continuous_batching",
                     "trust_remote_code", "latency"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, f"must be true or false, got {getattr(self, flag)!r}")
        if len(self.label) > 200:
            raise ConfigError("label", "is longer than 200 characters")

    @property
    def world_size(self) -> int:
        return self.gpus_per_node * self.num_nodes

    @property
    def dp_size(self) -> int:
        """Copies of the model (data-parallel groups) the world holds; the prompts are split between them."""
        return self.world_size // self.tp_size

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["prompts"] = list(self.prompts)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def settings(self) -> dict:
        """Everything but the prompts: what a table row or a chart's hover shows."""
        data = self.to_dict()
        data.pop("prompts")
        data["num_prompts"] = len(self.prompts)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        # configs stored by earlier versions carry an `extra` that was always empty,
        # and name gpus_per_node `num_gpus`
        data = {k: v for k, v in data.items() if not (k == "extra" and not v)}
        if "num_gpus" in data and "gpus_per_node" not in data:
            data["gpus_per_node"] = data.pop("num_gpus")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a run setting; known settings are {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))
