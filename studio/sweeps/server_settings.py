"""The server scenario's settings read together (issue 26): a `SweepRequest` whose
scenario is server (or that names a --url) becomes one `ServerCellSpec` per GPU
count and layout, and settings that make no sense together are refused with the
setting named and what to change."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from runner.config import ConfigError
from runner.host.serving.spec import ServerCellSpec, check_spec
from runner.host.validate import engines_allowed
from studio.sweeps.settings import BY_NAME, WHOLE, collect_prompts
from studio.sweeps.slo import parse_slo

SERVER_ONLY = ("engine", "profile", "rates", "concurrency", "endpoint", "requests_per_load")
# the offline scenario's own: a server batches as its engine does, and a sweep runs each load once
OFFLINE_ONLY = ("mode", "batch_size", "repeats", "fixed_length", "continuous_batching", "prompt_tokens")
MAX_RATES = 32


@dataclass
class ServerPlan:
    cells: list[ServerCellSpec]
    model: str
    max_new_tokens: int
    slo: dict | None
    name: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def gpu_counts(self) -> list[int]:
        return sorted({c.gpus for c in self.cells})


def _flag(name: str) -> str:
    return BY_NAME[name].cli_flags[0]


def _given(request, name: str) -> bool:
    setting = BY_NAME[name]
    value = getattr(request, setting.key)
    if value in (None, "") or str(value).strip() == str(setting.default):
        return False
    if setting.kind == WHOLE and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != setting.default  # the page's numbers arrive as floats: 1.0 is the default 1
    return True


def parse_rates(text) -> tuple[float, ...]:
    """'0.5,1,2' as requests per second, each above 0, written in ASCII digits."""
    if text in (None, ""):
        return ()
    items = [t.strip() for t in str(text).split(",")]
    if len(items) > MAX_RATES:
        raise ConfigError("rates", f"{len(items)} rates is more than {MAX_RATES}; give fewer")
    rates = []
    for item in items:
        try:
            rate = float(item) if item.isascii() and item else math.nan
        except ValueError:
            rate = math.nan
        if not 0 < rate < math.inf:
            raise ConfigError("rates", f"{item!r} is not a rate; give requests per second above 0 as a comma list, "
                              "e.g. 0.5,1,2")
        rates.append(rate)
    if len(set(rates)) != len(rates):
        raise ConfigError("rates", "a rate is given twice; give each once")
    return tuple(sorted(rates))


def is_server(request) -> bool:
    return request.scenario == "server" or bool((request.url or "").strip())


def refuse_mixed(request) -> None:
    """Settings that make no sense together, named."""
    url = (request.url or "").strip()
    if not is_server(request):
        for name in SERVER_ONLY:
            if _given(request, name):
                raise ConfigError(name, f"belongs to the server scenario; add --scenario server or leave out "
                                  f"{_flag(name)}")
        return
    if url:
        for name in ("gpu_counts", "tp_size", "engine"):
            if _given(request, name):
                raise ConfigError("url", f"drives a server someone else runs: nothing is launched, so there is no "
                                  f"GPU sweep and no engine; leave out {_flag(name)} or leave out --url")
    for name in OFFLINE_ONLY:
        if _given(request, name):
            why = ("synthetic prompts are not offered to a server yet; give --prompts or --preset"
                   if name == "prompt_tokens" else "a server batches as its engine does, each load runs once")
            raise ConfigError(name, f"belongs to the offline scenario ({why}); leave out {_flag(name)}")
    if parse_rates(request.rates) and request.profile not in ("constant", "poisson"):
        raise ConfigError("rates", f"are for --profile constant or poisson, not {request.profile}; leave out "
                          "--rates or change --profile")
    if _given(request, "concurrency") and request.profile != "concurrency":
        raise ConfigError("concurrency", f"is for --profile concurrency, not {request.profile}; leave out "
                          "--concurrency or change --profile")


def server_plan(request) -> ServerPlan:
    """The cells of a server sweep: one per GPU count and tensor-parallel size that divides it."""
    refuse_mixed(request)
    url = (request.url or "").strip() or None
    if not request.from_cli and not engines_allowed():
        for name in ("engine", "url"):
            if _given(request, name):
                raise ConfigError(name, "would run a command on, or send requests from, the studio's machine: "
                                  "whoever started the studio must allow it with `studio serve --allow-engines`; "
                                  "or leave it empty to launch the default engine")
    tokens = BY_NAME["max_new_tokens"].read_list(request.max_new_tokens) or [32]
    if len(tokens) > 1:
        raise ConfigError("max_new_tokens", "the server scenario takes one value; give one, e.g. 32")
    gpus = [1] if url else request.gpu_counts_of(request.gpu_counts)
    tps = BY_NAME["tp_size"].read_list(request.tp_size) or [1]
    prompts = tuple(collect_prompts(request.prompts_text, request.prompts_file, request.preset,
                                    request.prompts_format))
    common = dict(model=request.model, engine=(request.engine or "").strip() or None, url=url,
                  endpoint=request.endpoint, profile=request.profile, rates=parse_rates(request.rates),
                  concurrency=BY_NAME["concurrency"].number(request.concurrency), max_new_tokens=tokens[0],
                  prompts=prompts, requests_per_load=BY_NAME["requests_per_load"].number(request.requests_per_load),
                  seed=request.seed if isinstance(request.seed, int) else 0)
    cells = [ServerCellSpec(**common, gpus=g, tp_size=tp, replicas=g // tp) for g in gpus for tp in tps if g % tp == 0]
    if not cells:
        raise ConfigError("tp_size", f"no tensor-parallel size in {tps} divides a GPU count in {gpus}; give sizes "
                          "that divide them, e.g. --tp-size 1")
    for cell in cells:
        check_spec(cell)
    settings = {"model": request.model, "mode": "server", "max_new_tokens": tokens[0], "scenario": "server",
                "engine": common["engine"], "url": url, "profile": request.profile, "rates": list(common["rates"]),
                "endpoint": request.endpoint, "num_prompts": len(prompts), "slo": (request.slo or "").strip() or None}
    return ServerPlan(cells, request.model, tokens[0], parse_slo(request.slo), (request.name or "").strip(), settings)
