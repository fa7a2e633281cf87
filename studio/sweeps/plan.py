"""A sweep's plan: one set of settings over a grid of GPU counts (and, where asked,
batch sizes, new tokens, prompt tokens, dtypes and modes), every cell validated
before anything is launched or stored, every cell possibly repeated. What runs
the plan is `studio.sweeps.run`. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from db.store import Store
from runner.config import LIMITS, ConfigError, RunConfig
from runner.host.launch_groups import DEFAULT_LAUNCH, LAUNCH_MODES
from runner.host.validate import Prepared, check_context, check_process_count, prepare
from studio.sweeps.grid import cell_count, check_size, describe_cell, grid_cells, layout_cells, parse_axis, varied
from studio.sweeps.server_settings import ServerPlan, is_server, refuse_mixed, server_plan
from studio.sweeps.slo import parse_slo


def parse_gpu_counts(text: str | list) -> list[int]:
    return parse_axis("gpus_per_node", text)


@dataclass
class SweepPlan:
    base: RunConfig
    axes: dict[str, list]  # the grid: config field -> values; always holds gpus_per_node
    repeats: int
    prepared: list[Prepared] = field(default_factory=list)  # one per cell, in grid order
    name: str = ""
    # a resumed sweep runs only what was left: its (cell index, repeat) pairs, and
    # the statuses of the runs that had ended before, which its final status counts too
    remaining: list[tuple[int, int]] | None = None
    ended_before: tuple[str, ...] = ()
    slo: dict | None = None  # latency limits for goodput (studio.sweeps.slo), kept with the sweep
    # shared: runs that hold the same model the same way share one launch (runner.host.launch_groups);
    # per-run: a launch of its own for every run. Multi-node sweeps always launch per run.
    launch: str = DEFAULT_LAUNCH

    @property
    def launch_mode(self) -> str:
        """The launch mode the sweep runs with: multi-node runs keep one launch per run."""
        return "per-run" if self.base.num_nodes > 1 else self.launch

    @property
    def gpu_counts(self) -> list[int]:
        return list(self.axes.get("gpus_per_node") or [self.base.gpus_per_node])

    @property
    def order(self) -> list[tuple[int, int]]:
        """(cell index, repeat) pairs, repeats outermost: every cell is measured once
        before any is measured twice, so slow drift on a shared machine spreads evenly."""
        if self.remaining is not None:
            return list(self.remaining)
        return [(c, r) for r in range(self.repeats) for c in range(len(self.prepared))]

    def settings(self) -> dict:
        """The sweep's settings as stored: a setting the grid varies is listed under
        `axes` (and None at the top level, since no single value describes it)."""
        out = self.base.settings()
        for axis in varied(self.axes):
            out[axis] = None
        out["axes"] = {axis: list(values) for axis, values in self.axes.items()}
        if self.slo:
            out["slo"] = self.slo
        out["launch"] = self.launch_mode
        # what the cells run, not the base's stand-in: synthetic prompts replace the base's one placeholder
        counts = {len(p.config.prompts) for p in self.prepared}
        out["num_prompts"] = counts.pop() if len(counts) == 1 else None
        return out


def plan_request(request) -> SweepPlan | ServerPlan:
    """A `SweepRequest` (studio.sweeps.settings), from any surface, validated into a plan
    (a `ServerPlan` for the server scenario); raises ConfigError before anything is
    stored or launched."""
    if is_server(request):
        return server_plan(request)
    refuse_mixed(request)
    return plan_sweep(**request.sweep_args())


def plan_sweep(base: RunConfig, axes: dict | list, repeats: int = 1, name: str = "",
               num_prompts: int | None = None, slo: str | dict | None = None,
               launch: str = DEFAULT_LAUNCH) -> SweepPlan:
    """Validate every cell of the sweep before anything is launched or stored.

    `axes` maps settings to their values (a list of GPU counts alone is the plain
    GPU sweep). A cell with `prompt_tokens` gets `num_prompts` synthetic prompts
    of exactly that many tokens (default: as many as `base` has)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= LIMITS["repeats"]:
        raise ConfigError("repeats", f"must be a whole number from 1 to {LIMITS['repeats']}, got {repeats!r}")
    axes = {"gpus_per_node": axes} if isinstance(axes, (list, tuple, str, int)) else dict(axes)
    axes = {axis: parse_axis(axis, values) for axis, values in axes.items() if values not in (None, "", [])}
    axes.setdefault("gpus_per_node", [base.gpus_per_node])
    if num_prompts is not None and "prompt_tokens" not in axes and base.prompt_tokens is None:
        raise ConfigError("num_prompts", "goes with --prompt-tokens (synthetic prompts); without it, give the "
                          "prompts themselves")
    slo = parse_slo(slo) if isinstance(slo, str) else slo  # a bad SLO is refused before any cell is planned
    if launch not in LAUNCH_MODES:
        raise ConfigError("launch", f"must be one of {', '.join(LAUNCH_MODES)}; got {launch!r}")
    if base.num_nodes > 1 and base.mode == "auto" and base.memory_budget_gb is None:
        # every node computes the auto plan itself; from its own free memory the plans could differ
        raise ConfigError("memory_budget_gb", "an auto run over several nodes needs a memory budget "
                          "(--memory-budget-gb), so that every node plans the same batches")
    # counted from the lists' lengths first: a grid past the limit is refused before a
    # single combination is built (1,...,100 three times is a million of them)
    check_size(cell_count(axes), repeats)
    if base.num_nodes == 1:  # a count past this machine's cap is refused as such, however large
        check_process_count(max(axes["gpus_per_node"]), base)
    cells = layout_cells(grid_cells(axes), axes)
    prompts_by_length: dict[int, list[str]] = {}
    prepared = []
    for cell in cells:
        try:
            config = base.replace(**cell)
            if config.prompt_tokens is not None:
                if config.prompt_tokens not in prompts_by_length:
                    prompts_by_length[config.prompt_tokens] = _synthetic(config, num_prompts)
                config = config.replace(prompts=prompts_by_length[config.prompt_tokens])
            prepared.append(prepare(config))
        except ConfigError as exc:
            if len(cells) == 1:
                raise
            raise ConfigError(exc.field, f"{exc.message} (in the cell {describe_cell(cell, varied(axes))})") from None
    return SweepPlan(base=base, axes=axes, repeats=repeats, prepared=prepared, name=name, slo=slo, launch=launch)


def _synthetic(config: RunConfig, num_prompts: int | None) -> list[str]:
    from runner.host.synthetic import planning_tokenizer, synthetic_prompts
    from runner.models import resolve_model

    count = len(config.prompts) if num_prompts is None else num_prompts
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= LIMITS["num_prompts"]:
        raise ConfigError("num_prompts", f"must be a whole number from 1 to {LIMITS['num_prompts']}, got {count!r}")
    spec = resolve_model(config.model)
    check_context(config, spec)  # before the prompts are made: a tokenizer is loaded for them
    return synthetic_prompts(planning_tokenizer(spec), config.prompt_tokens, count, seed=config.seed)


def resume_plan(store: Store, sweep_id: int) -> tuple[SweepPlan, list[int]]:
    """The runs a stopped server left queued in one of its sweeps, planned again from
    their stored settings and validated again (the machine may have changed since).
    Returns the plan and the ids of the runs it will fill in, in their original order."""
    sweep = store.get_sweep(sweep_id)
    left = sorted((r for r in sweep["runs"] if r["status"] == "queued" and r["started_at"] is None),
                  key=lambda r: r["id"])
    if not left:
        raise ConfigError("sweep", f"sweep {sweep_id} has no queued run to resume")
    left_ids = [r["id"] for r in left]
    configs = [RunConfig.from_dict(r["config"]) for r in left]
    cells = list(dict.fromkeys(configs))  # a cell is its whole config (frozen, so hashable)
    axes = (sweep.get("settings") or {}).get("axes") or {"gpus_per_node": sweep.get("gpu_counts") or []}
    plan = SweepPlan(
        base=configs[0], axes=axes, repeats=sweep["repeats"], prepared=[prepare(c) for c in cells],
        name=sweep["name"] or "",
        remaining=[(cells.index(c), r["repeat_index"]) for c, r in zip(configs, left)],
        ended_before=tuple(r["status"] for r in sweep["runs"] if r["id"] not in left_ids),
        launch=(sweep.get("settings") or {}).get("launch") or DEFAULT_LAUNCH,
    )
    return plan, left_ids


def auto_plan(prepared: Prepared) -> dict | None:
    """The batch assignment of an `auto` run; every node of a multi-node run computes
    the same one from the same settings, so each rank knows its share."""
    if prepared.config.mode != "auto":
        return None
    from runner.host.validate import plan_for

    return plan_for(prepared)
