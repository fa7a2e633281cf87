"""The Run tab's tensor-parallel sizes and the API's `tp`: a list becomes the grid's
tp axis, the grid size counts only the layouts that fit, a bad list is refused with
`tp` named, and /start_sweep passes it on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rowkit import request

from db.store import Store
from runner.config import ConfigError
from studio.web import forms

pytestmark = pytest.mark.usefixtures("page_sees_no_gpu")


@pytest.fixture
def any_model_splits(monkeypatch):
    """Whether a model can be split (heads, a tensor-parallel plan, memory) is the runner's check
    (runner.host.validate.check_layout), tested there; here every layout of `tiny` passes it."""
    import runner.host.validate

    monkeypatch.setattr(runner.host.validate, "check_layout", lambda *args: None)


def test_a_tp_list_is_the_grids_tp_axis_and_1_is_no_axis():
    assert forms.request_axes(request(gpu_counts=["2"], tp_size="1,2"))["tp_size"] == [1, 2]
    for plain in ("1", 1, "", None):
        assert "tp_size" not in forms.request_axes(request(tp_size=plain))
    assert forms.request_axes(request(gpu_counts=["2"], tp_size=2.0))["tp_size"] == [2]


def test_the_grid_size_counts_only_the_layouts_that_fit():
    line = forms.grid_summary(request(gpu_counts=["2", "4"], tp_size="1,2,4"))
    assert "= 5 cell(s)" in line and "**5 run(s)**" in line  # 2 x 3 combinations, 4 on 2 GPUs does not fit
    assert "each GPU count with the tp sizes that divide it" in line
    assert "= 8 cell(s)" in forms.grid_summary(request(gpu_counts=["2", "4"], tp_size="1,2", batch_size="1,8"))
    assert forms.cell_count({"gpus_per_node": [1, 2, 3, 4], "tp_size": [1, 2]}) == 6


@pytest.mark.parametrize("tp, message", [
    ("3", "tp_size: 3 divides none of the GPU counts (2)"),
    ("0", "tp_size: must be at least 1, got 0"),
    ("1,x", "tp_size: 'x' is not a whole number"),
    ("2,2", "tp_size: lists 2 twice"),
])
def test_a_bad_tp_is_refused_with_tp_named(tp, message):
    page = message.replace("tp_size:", "Tensor-parallel sizes (tp):")  # the page names its field's label
    assert forms.grid_summary(request(gpu_counts=["2"], tp_size=tp)).startswith(f"⚠ {page}")
    with pytest.raises(ConfigError) as caught:
        forms.plan_request(request(gpu_counts=["2"], tp_size=tp))
    assert forms.field_message(caught.value).startswith(message)
    assert list(forms.check_request(request(gpu_counts=["2"], tp_size=tp))) == ["tp_size"]  # shown next to the tp box


def test_a_layout_grid_plans_each_gpu_count_with_the_sizes_that_divide_it(any_model_splits):
    plan = forms.plan_request(request(gpu_counts=["1", "2"], tp_size="1,2"))
    assert [(p.config.gpus_per_node, p.config.tp_size) for p in plan.prepared] == [(1, 1), (2, 1), (2, 2)]
    assert plan.axes["tp_size"] == [1, 2]


def test_the_tp_box_is_a_form_field_that_shows_its_own_refusals():
    # the server scenario's fields follow it (issue 26): they are declared after it
    assert forms.FORM_FIELDS.index("tp_size") < forms.FORM_FIELDS.index("scenario")
    assert forms.form_field(ConfigError("tp_size", "x")) == "tp_size"


def test_start_sweep_takes_tp(db_path, any_model_splits):
    import gradio as gr

    from studio.web.api import register_api

    plans = []
    supervisor = SimpleNamespace(submit=lambda plan: plans.append(plan) or 7, status=lambda sweep_id: None)
    with gr.Blocks() as demo:
        register_api(supervisor, Store(db_path))
    start = next(f.fn for f in demo.fns.values() if f.api_name == "start_sweep")
    out = start(prompts="Call me Ishmael.", gpu_counts="2", tp_size="1,2", max_new_tokens=4)
    assert out["runs"] == 2 and plans[0].axes["tp_size"] == [1, 2]
    with pytest.raises(gr.Error, match="tp_size: 3 divides none of the GPU counts"):
        start(prompts="Call me Ishmael.", gpu_counts="2", tp_size="3")
    with pytest.raises(gr.Error, match="tp_size: must be text"):
        start(prompts="Call me Ishmael.", gpu_counts="2", tp_size=True)
    assert len(plans) == 1
