"""A sweep's grid: the settings it varies and the cells (combinations) it runs.

Any of GPU count, batch size, max new tokens, prompt tokens, dtype and mode may
be a list; the sweep runs every combination. Lists are checked here, so a zero,
a repeated value or a word where a number belongs is refused with the setting
named, before any cell is validated or launched.
"""

from __future__ import annotations

import itertools

from runner.config import ConfigError
from runner.layout import tp_fits, tp_label
from studio.sweeps.settings import AXES, AXIS_SETTING

MAX_RUNS = 200  # cells x repeats: a bigger grid is a typo more often than a plan
LABELS = {"gpus_per_node": "GPUs", "tp_size": "tp", "batch_size": "batch", "max_new_tokens": "new tokens",
          "prompt_tokens": "prompt tokens", "dtype": "dtype", "mode": "mode"}


def parse_axis(axis: str, value) -> list:
    """One setting's values from '1,8,32', a list, or a single value, as its declaration
    (studio.sweeps.settings) reads them: refused with the setting named."""
    return AXIS_SETTING[axis].values(value)


def cell_count(axes: dict[str, list]) -> int:
    """The cells a grid runs, counted from its lists' lengths without listing them:
    every combination, a GPU count only with the tp sizes that divide it. A tp list
    that fits no GPU count is refused as layout_cells refuses it."""
    cells = 1
    for axis, values in axes.items():
        if axis not in ("gpus_per_node", "tp_size"):
            cells *= len(values)
    gpus, tps = axes.get("gpus_per_node") or [1], axes.get("tp_size", [1])
    layout_cells([], axes)
    return cells * sum(1 for g in gpus for t in tps if tp_fits(t, g))


def grid_cells(axes: dict[str, list]) -> list[dict]:
    """Every combination, the axes in AXES order, the last one changing fastest."""
    names = [a for a in AXES if a in axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[a] for a in names))]


def layout_cells(cells: list[dict], axes: dict[str, list]) -> list[dict]:
    """The cells whose tensor-parallel size divides their GPU count: a layout grid
    (`--gpus 2,4 --tp 1,2,4`) runs each GPU count with the sizes that fit it. Every
    listed value must be used somewhere, or the grid is refused with that value named."""
    if "tp_size" not in axes:
        return cells
    gpus, tps = axes.get("gpus_per_node") or [1], axes["tp_size"]
    for tp in tps:
        if not any(tp_fits(tp, g) for g in gpus):
            counts = ", ".join(map(str, gpus))
            raise ConfigError("tp_size", f"{tp} divides none of the GPU counts ({counts}): a tensor-parallel group "
                              "takes a whole share of the GPUs; use a tp that divides the GPU count, or more GPUs")
    for g in gpus:
        if not any(tp_fits(tp, g) for tp in tps):
            raise ConfigError("tp_size", f"no tp of {', '.join(map(str, tps))} divides the GPU count {g}; "
                              f"add tp 1 or drop {g} GPUs")
    return [cell for cell in cells if tp_fits(cell["tp_size"], cell.get("gpus_per_node", gpus[0]))]


def check_size(cells: int, repeats: int) -> None:
    if cells * repeats > MAX_RUNS:
        raise ConfigError("grid", f"{cells} cells x {repeats} repeat(s) = {cells * repeats} runs, more than the "
                          f"limit of {MAX_RUNS}; drop some values or repeats")


def varied(axes: dict[str, list]) -> list[str]:
    """The axes with more than one value: what tells the sweep's cells apart."""
    return [a for a in AXES if len(axes.get(a) or []) > 1]


def setting_text(axis: str, value) -> str:
    """One setting's value as labels show it: 'batch 8', 'tp 1 (replicas)'."""
    return tp_label(value) if axis == "tp_size" else f"{LABELS[axis]} {value}"


def describe_cell(cell: dict, axes: list[str] | None = None) -> str:
    """'GPUs 2, batch 8' for the cell's values on `axes` (default: all of its own)."""
    return ", ".join(setting_text(a, cell[a]) for a in (axes if axes is not None else cell) if a in cell)


def sweep_layouts(sweep: dict) -> str:
    """' · tp 1,2' for a stored sweep that lists tensor-parallel sizes other than 1; '' otherwise."""
    values = ((sweep.get("settings") or {}).get("axes") or {}).get("tp_size") or []
    return f" · tp {','.join(map(str, values))}" if values and values != [1] else ""


def sweep_value(sweep: dict, axis: str) -> str:
    """A stored sweep's value of a setting as a label shows it: its list where it is a grid axis."""
    values = ((sweep.get("settings") or {}).get("axes") or {}).get(axis)
    if values and len(values) > 1:
        return ",".join(str(v) for v in values)
    return str(sweep.get(axis) if sweep.get(axis) is not None else (values or ["–"])[0])
