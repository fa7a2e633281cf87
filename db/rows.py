"""A stored run as the studio reads it: a RunRow, its columns with its layout
worked out once, when the row is read.

Rows stored by older versions lack columns that later ones fill (num_nodes before
multi-node runs, tp_size before layouts, dp_size before it was stored), and a run
that never launched stores no world_size. Those gaps are closed here and nowhere
else, so every reader (analysis, charts, the page, the CLI) takes the same answer
from the row instead of each working it out again with its own fallbacks.
"""

from __future__ import annotations

from typing import Mapping

from runner.layout import layout_name, tp_fits

# The keys every RunRow holds, whatever version of the studio stored it.
LAYOUT_KEYS = ("num_nodes", "world_size", "tp_size", "dp_size", "layout")


class RunRow(dict):
    """A run's columns (JSON columns decoded) plus its layout, always present:

    num_nodes   nodes the run spanned
    world_size  processes (GPUs) over all its nodes, num_gpus × num_nodes: the x of every scaling chart
    tp_size     ranks that share one copy of the model
    dp_size     copies of the model
    layout      the layout as people read it: '4 replicas', '2 × tp 2', 'tp 4'

    A dict, so JSON, pandas and every `run["x"]` reader take it as they took the
    plain rows; a copy ({**row}) keeps the worked-out keys. The store makes one per
    run it reads; a row built by hand (a test's) is made the same way, RunRow({...}).
    """

    def __init__(self, columns: Mapping = (), /, **more):
        super().__init__(columns, **more)
        self.update(layout_of(self))


def layout_of(columns: Mapping) -> dict:
    """The layout keys of a run's columns. num_gpus is the GPUs (processes) per node, NOT NULL in
    every schema; a stored world_size is what a finished run reported, the same product or NULL."""
    nodes = int(columns.get("num_nodes") or 1)  # rows from before multi-node runs
    world = int(columns["num_gpus"]) * nodes
    tp = int(columns.get("tp_size") or 1)  # rows from before layouts ran tp 1
    dp = int(columns.get("dp_size") or max(1, world // tp))  # rows from before it was stored
    return {"num_nodes": nodes, "world_size": world, "tp_size": tp, "dp_size": dp, "layout": row_layout_name(world, tp)}


def row_layout_name(world: int, tp: int) -> str:
    """A stored row whose tp does not divide its GPUs (none is launched so) is named by its
    numbers rather than refused."""
    return layout_name(world, tp) if tp_fits(tp, world) else f"{world} GPU(s) at tp {tp}"
