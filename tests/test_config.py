import pytest

from runner.config import LIMITS, ConfigError, RunConfig


def make(**kw):
    kw.setdefault("prompts", ["hello"])
    return RunConfig(**kw)


def test_defaults_are_greedy_batched_tiny():
    config = make()
    assert (config.model, config.mode, config.do_sample, config.gpus_per_node) == ("tiny", "batched", False, 1)
    assert config.prompts == ("hello",)


def test_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        make().batch_size = 4


def test_round_trips_through_json():
    config = make(batch_size=4, mode="simple", fixed_length=True)
    assert RunConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": ["ok", "  "]}, "prompts"),
        ({"prompts": "a string, not a list"}, "prompts"),
        ({"batch_size": 0}, "batch_size"),
        ({"gpus_per_node": 0}, "gpus_per_node"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": LIMITS["max_new_tokens"] + 1}, "max_new_tokens"),
        ({"mode": "fast"}, "mode"),
        ({"dtype": "int3"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"top_p": 0}, "top_p"),
        ({"temperature": -1}, "temperature"),
        ({"model": ""}, "model"),
        ({"model": "--trust_remote_code"}, "model"),
        ({"model": "x; rm -rf ~"}, "model"),
        ({"compile": True}, "compile"),
        ({"num_nodes": 2}, "main_port"),
        ({"num_nodes": 2, "main_port": 29500, "node_rank": 2}, "node_rank"),
    ],
)
def test_bad_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError) as info:
        make(**changes)
    assert info.value.field == field
    assert field in str(info.value)


def test_errors_say_what_to_change():
    with pytest.raises(ConfigError, match="at least 1"):
        make(batch_size=0)
    with pytest.raises(ConfigError, match="empty"):
        make(prompts=[])


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="not a run setting"):
        RunConfig.from_dict({"prompts": ["a"], "batchsize": 3})


def test_world_size_spans_nodes():
    assert make(gpus_per_node=4, num_nodes=2, main_port=29500).world_size == 8
