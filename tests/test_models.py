import json

import pytest

from runner.config import ConfigError
from runner.models import arch_names, resolve_model


def test_tiny_is_embedded():
    spec = resolve_model("tiny")
    assert spec.kind == "tiny" and spec.context_length == 2048


def test_shipped_architectures():
    assert "llama-2-7b" in arch_names()
    spec = resolve_model("arch:llama-2-7b")
    assert spec.kind == "arch" and spec.context_length == 4096


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ConfigError, match="llama-2-7b"):
        resolve_model("arch:gpt-9")


def test_local_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 512}))
    spec = resolve_model(str(tmp_path))
    assert spec.kind == "local" and spec.context_length == 512


def test_folder_without_config(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_hub_id_not_cached_names_the_offline_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        resolve_model("nobody/no-such-model")
    assert "HF_HOME" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


@pytest.mark.parametrize("bad", ["../../etc", "a/b/c", "-x"])
def test_not_a_model(bad):
    with pytest.raises(ConfigError):
        resolve_model(bad)


def test_a_path_that_exists_and_one_that_does_not_get_the_same_answer(tmp_path):
    """The message must not tell a prober which server paths exist."""
    (tmp_path / "empty").mkdir()
    messages = []
    for name in ("empty", "missing"):
        with pytest.raises(ConfigError) as info:
            resolve_model(str(tmp_path / name))
        messages.append(info.value.message.replace(name, "NAME"))
    assert messages[0] == messages[1]
    assert "no config.json" in messages[0]


def test_allowed_folders(tmp_path, monkeypatch):
    inside, outside = tmp_path / "models" / "m", tmp_path / "other"
    for folder in (inside, outside):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    monkeypatch.setenv("STUDIO_MODEL_DIRS", str(tmp_path / "models"))
    assert resolve_model(str(inside)).kind == "local"
    with pytest.raises(ConfigError, match="STUDIO_MODEL_DIRS"):
        resolve_model(str(outside))
