"""Loading, format detection, label masking and refusals, on real files."""

import copy
import json

import pytest

from conftest import write_jsonl
from workbench.data import load_examples
from workbench.data.encoding import IGNORE, encode, encode_all
from workbench.data.formats import Example
from workbench.errors import DataError

CHAT = {"messages": [{"role": "user", "content": "Say hi"},
                     {"role": "assistant", "content": "Hi there!"}]}

FORMAT_ROWS = [
    ("messages", CHAT),
    ("messages", {"conversations": [{"from": "human", "value": "Say hi"},
                                    {"from": "gpt", "value": "Hi there!"}]}),
    ("alpaca", {"instruction": "Say hi", "input": "", "output": "Hi there!"}),
    ("prompt_completion", {"prompt": "Say hi: ", "completion": "Hi there!"}),
    ("text", {"text": "Hi there!"}),
]


@pytest.mark.parametrize("expected,row", FORMAT_ROWS)
def test_formats_are_detected_from_keys(tmp_path, expected, row):
    fmt, examples = load_examples(str(write_jsonl(tmp_path / "d.jsonl", [row, row])))
    assert fmt == expected and len(examples) == 2


def test_every_file_type_loads_the_same_rows(tmp_path):
    import pandas as pd
    from datasets import Dataset

    rows = [{"prompt": f"q{i}: ", "completion": f"a{i}"} for i in range(5)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    write_jsonl(tmp_path / "d.jsonl", rows)
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet", "saved"):
        fmt, examples = load_examples(str(tmp_path / name))
        assert fmt == "prompt_completion", name
        assert [e.completion for e in examples] == [r["completion"] for r in rows], name


def test_bom_crlf_and_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(CHAT) + "\r\n\r\n" + json.dumps(CHAT) + "\r\n")
                     .encode())
    assert len(load_examples(str(path))[1]) == 2


def test_odd_line_breaks_inside_strings_keep_line_numbers(tmp_path):
    # U+2028 is legal unescaped inside a JSON string; only "\n" ends a JSONL line.
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "a\u2028b"}, ensure_ascii=False) + "\n{broken\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match="d.jsonl line 2: not valid JSON"):
        load_examples(str(path))


def test_csv_cells_may_hold_newlines_and_one_chat_object_is_a_dataset(tmp_path):
    (tmp_path / "d.csv").write_text('prompt,completion\n"line one\nline two",b\n')
    fmt, examples = load_examples(str(tmp_path / "d.csv"))
    assert fmt == "prompt_completion" and examples[0].prompt == "line one\nline two"
    (tmp_path / "one.json").write_text(json.dumps(CHAT))
    fmt, examples = load_examples(str(tmp_path / "one.json"))
    assert fmt == "messages" and len(examples) == 1 and len(examples[0].messages) == 2


def test_a_chat_template_refusal_names_every_example(demo_tokenizer):
    strict = copy.deepcopy(demo_tokenizer)
    strict.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                            "{{ raise_exception('no system turns') }}{% endif %}"
                            "{{ m['content'] }}{% endfor %}")
    turns = ({"role": "system", "content": "s"}, {"role": "user", "content": "u"},
             {"role": "assistant", "content": "a"})
    examples = [Example(f"d.jsonl line {i}", messages=turns) for i in (1, 2)]
    with pytest.raises(DataError) as caught:
        encode_all(examples, strict, 64, "responses", "training")
    assert "d.jsonl line 1: the model's chat template refused" in str(caught.value)
    assert "d.jsonl line 2" in str(caught.value) and "no system turns" in str(caught.value)


BAD_FILES = [
    # (file name, content, words the error must contain)
    ("bad.jsonl", '{"text": "ok"}\n{"text": "broken\n', "bad.jsonl line 2: not valid JSON"),
    ("bad.jsonl", b'{"text": "caf\xe9"}\n', "bad.jsonl line 1: bytes that are not UTF-8"),
    ("bad.jsonl", '{"question": "a", "answer": "b"}\n', "cannot tell the format from keys "
                                                         "['answer', 'question']"),
    ("bad.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n',
     "line 1: no assistant turn"),
    ("bad.jsonl", '{"messages": [{"role": "robot", "content": "hi"}]}\n',
     "line 1: message 0 has role 'robot'"),
    ("bad.jsonl", '{"messages": [{"role": "user", "content": 5}]}\n',
     "message 0 'content' must be a string, got a number"),
    ("bad.jsonl", '{"text": "a"}\n{"prompt": "b", "completion": "c"}\n', "line 2: missing 'text'"),
    ("bad.jsonl", '{"conversations": [{"from": "bot", "value": "hi"}]}\n',
     "line 1: message 0 has from 'bot'; allowed: human"),
    ("bad.jsonl", '{"conversations": []}\n', "'conversations' must be a non-empty list of "
                                              "{from, value}"),
    ("bad.csv", 'prompt,completion\na,b,extra\n', "bad.csv line 2: 3 cells but the header "
                                                    "names 2 columns"),
    ("empty.jsonl", "\n\n", "has no rows"),
    ("bad.txt", "hello", "unsupported file type '.txt'"),
]


@pytest.mark.parametrize("name,content,words", BAD_FILES)
def test_bad_files_are_refused_naming_file_and_line(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as caught:
        load_examples(str(path))
    assert words in str(caught.value)


def test_label_masking_trains_exactly_the_assistant_turns(demo_tokenizer):
    example = Example("t", messages=(
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"},
        {"role": "assistant", "content": "Rome."}))
    encoded = encode(example, demo_tokenizer, max_length=512)
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE]
    assert demo_tokenizer.decode(trained) == "Paris.<|im_end|>\nRome.<|im_end|>\n"
    assert all(label in (IGNORE, token) for token, label in zip(encoded.input_ids, encoded.labels))
    full = demo_tokenizer.apply_chat_template(list(example.messages), tokenize=False)
    assert demo_tokenizer.decode(encoded.input_ids) == full  # trained ids = inference ids


def test_prompt_completion_trains_completion_and_eos(demo_tokenizer):
    encoded = encode(Example("t", prompt="Q: 2+2\nA:", completion=" 4"), demo_tokenizer, 64)
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE]
    assert demo_tokenizer.decode(trained) == " 4" + demo_tokenizer.eos_token
    everything = encode(Example("t", prompt="Q: 2+2\nA:", completion=" 4"), demo_tokenizer, 64,
                        train_on="all")
    assert everything.labels == everything.input_ids


def test_truncation_is_counted_and_nothing_trained_is_refused(demo_tokenizer):
    long_prompt = Example("d.jsonl line 1", messages=(
        {"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}))
    short = Example("d.jsonl line 2", messages=(
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}))
    rows, stats = encode_all([long_prompt, short], demo_tokenizer, 64, "responses", "training")
    assert (stats.truncated, stats.dropped_nothing_trained, stats.examples) == (1, 1, 1)
    with pytest.raises(DataError, match="nothing would be trained in the training data"):
        encode_all([long_prompt], demo_tokenizer, 64, "responses", "training")
