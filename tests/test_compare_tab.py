"""The Compare tab's controls, built without a browser."""

from __future__ import annotations

import gradio as gr


def test_compare_has_no_button_that_repeats_the_selection(store, tmp_path):
    """Choosing sweeps draws them; a Draw button did the same again and nothing else."""
    from studio.web.compare_tab import build_compare_tab

    with gr.Blocks() as demo:
        build_compare_tab(store, tmp_path)
    buttons = [b.value for b in demo.blocks.values() if isinstance(b, gr.Button)]
    assert "Draw" not in buttons, buttons
    redraws = [f for f in demo.fns.values() if f.name == "draw"
               and any(getattr(demo.blocks[t[0]], "label", None) == "Sweeps" for t in f.targets)]
    assert redraws, "choosing sweeps no longer draws them"
