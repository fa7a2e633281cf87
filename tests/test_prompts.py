import json

import pytest

from runner.config import ConfigError
from runner.host.prompts import SEED_LINES, load_prompts, preset


def test_seed_preset_is_the_posts_ten_lines_ten_times():
    prompts = preset("seed")
    assert len(prompts) == 100 and prompts[:10] == list(SEED_LINES) and prompts[10:20] == list(SEED_LINES)


def test_txt_one_prompt_a_line(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("first\n\n  second  \n")
    assert load_prompts(f) == ["first", "second"]


def test_jsonl_prompt_field(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b", "id": 2}) + "\n")
    assert load_prompts(f) == ["a", "b"]


def test_csv_prompt_column(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text('id,prompt\n1,"hello, world"\n2,bye\n')
    assert load_prompts(f) == ["hello, world", "bye"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("p.jsonl", "{not json}\n", "line 1 is not JSON"),
        ("p.jsonl", '{"text": "a"}\n', "no text field 'prompt'"),
        ("p.csv", "id,text\n1,a\n", "no 'prompt' column"),
        ("p.txt", "\n\n", "holds no prompts"),
        ("p.pdf", "x", "use a .txt"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_prompts(f)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_prompts(tmp_path / "nope.txt")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("poems")
