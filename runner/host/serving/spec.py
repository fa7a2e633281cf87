"""What one server cell is: the server (a command template or a URL), its layout,
and the load to drive it with (issue 26). Torch-free; every bad value raises a
`ConfigError` naming the field and what to change."""

from __future__ import annotations

import string
from dataclasses import dataclass

from runner.config import ConfigError

ENDPOINTS = ("completions", "chat")
PROFILES = ("synchronous", "concurrency", "constant", "poisson", "sweep")
PLACEHOLDERS = ("model", "port", "tp", "dp", "gpus")
DEFAULT_ENGINE = "transformers serve {model} --port {port} --continuous-batching"
# Without a GPU, continuous batching sizes its KV cache at 60 % of free RAM: 14 GB for tiny on a
# 24 GB machine, so a second replica started beside it is killed while loading. 64 pages of 256
# tokens hold 64 requests in flight, in 1.4 GB for tiny.
CPU_CACHE = "--cb-num-blocks 64"
# the studio's own paths: a template names them with placeholders instead
ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class ServerCellSpec:
    model: str = "tiny"
    engine: str | None = None  # a command template; None is DEFAULT_ENGINE
    url: str | None = None  # a server someone else runs: nothing is launched
    gpus: int = 1
    tp_size: int = 1
    replicas: int = 1
    endpoint: str = "completions"
    profile: str = "sweep"
    rates: tuple[float, ...] = ()
    sweep_points: int = 4
    concurrency: int = 1
    max_new_tokens: int = 32
    prompts: tuple[str, ...] = ()
    requests_per_load: int = 20
    warmup_requests: int = 2
    cooldown_requests: int = 2
    seed: int = 0
    health_timeout_s: float = 120.0
    request_timeout_s: float = 120.0

    @property
    def template(self) -> str:
        return self.engine if self.engine is not None else DEFAULT_ENGINE


def default_engine(visible_gpus: int) -> str:
    """The embedded default's command on this machine."""
    return DEFAULT_ENGINE if visible_gpus else f"{DEFAULT_ENGINE} {CPU_CACHE}"


def _whole(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, f"must be a whole number of at least {low}, not {value!r}")


def _seconds(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigError(name, f"must be a number of seconds above 0, not {value!r}")


def template_fields(template: str) -> list[str]:
    """The placeholders a command template uses; an unknown one or a broken brace is an error."""
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ConfigError("engine", f"{template!r} is not a command template ({exc}); write placeholders as "
                          "{model}, {port}, {tp}, {dp}, {gpus} and a literal brace as {{ or }}") from None
    for name in names:
        if name not in PLACEHOLDERS:
            raise ConfigError("engine", f"{{{name}}} is not a placeholder the studio fills; use "
                              + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    return names


def check_spec(spec: ServerCellSpec) -> None:
    """Refuses a cell that cannot run, before anything starts."""
    if spec.endpoint not in ENDPOINTS:
        raise ConfigError("endpoint", f"{spec.endpoint!r} is not an endpoint; choose one of: {', '.join(ENDPOINTS)}")
    if spec.profile not in PROFILES:
        raise ConfigError("profile", f"{spec.profile!r} is not a load profile; choose one of: {', '.join(PROFILES)}")
    for name in ("gpus", "tp_size", "replicas", "concurrency", "max_new_tokens", "requests_per_load", "sweep_points"):
        _whole(name, getattr(spec, name), 1)
    for name in ("warmup_requests", "cooldown_requests", "seed"):
        _whole(name, getattr(spec, name), 0)
    _seconds("health_timeout_s", spec.health_timeout_s)
    _seconds("request_timeout_s", spec.request_timeout_s)
    if not spec.prompts or not all(isinstance(p, str) and p for p in spec.prompts):
        raise ConfigError("prompts", "give at least one prompt, none of them empty")
    if spec.profile in ("constant", "poisson"):
        if not spec.rates:
            raise ConfigError("rates", f"the {spec.profile} profile needs at least one rate in requests per second")
        for rate in spec.rates:
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < float("inf"):
                raise ConfigError("rates", f"{rate!r} is not a rate; give requests per second above 0")
    if spec.url is not None:
        if not spec.url.startswith(("http://", "https://")):
            raise ConfigError("url", f"{spec.url!r} is not a server address; give one like http://host:8000")
        return
    if not spec.template.strip():
        raise ConfigError("engine", "is empty; give a command like " + DEFAULT_ENGINE)
    fields = template_fields(spec.template)
    if "port" not in fields:
        raise ConfigError("engine", "has no {port}: the studio picks a free port per server and needs to pass it")
    if spec.gpus != spec.tp_size * spec.replicas:
        raise ConfigError("gpus", f"{spec.gpus} GPUs cannot hold {spec.replicas} replica(s) of tensor-parallel "
                          f"size {spec.tp_size}; make gpus = tp_size × replicas ({spec.tp_size * spec.replicas})")
    if spec.tp_size > 1 and "tp" not in fields:
        raise ConfigError("tp_size", f"is {spec.tp_size} but the engine template has no {{tp}} to pass it; "
                          "add e.g. --tensor-parallel-size {tp}, or use tp_size 1")


def engine_kind(spec: ServerCellSpec) -> str:
    """Which engine the template starts, by its program's name: it decides the
    engine-specific fields a request may carry ('' when unknown)."""
    if spec.url is not None and spec.engine is None:
        return ""
    words = spec.template.split()
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if program.startswith("python") and len(words) > 2 and words[1] == "-m":
        program = words[2].split(".")[0]
    return program if program in ("transformers", "vllm", "sglang") else ""
