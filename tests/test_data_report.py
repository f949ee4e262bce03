"""`workbench data report`: token statistics with the real tokenizer and chat template,
the histogram, the highlighted example view, and the CLI."""

import json
import os
import subprocess
import sys

import pytest

from conftest import write_jsonl
from workbench.data import check, report
from workbench.data.encoding import encode, encode_many, measure_many
from workbench.data.formats import Example
from workbench.errors import DataError

ANSWER = "The quick brown fox jumps over the lazy dog. " * 3


def chat(user, answer, system=None):
    turns = ([{"role": "system", "content": system}] if system else [])
    return {"messages": turns + [{"role": "user", "content": user},
                                 {"role": "assistant", "content": answer}]}


@pytest.fixture
def mixed_file(tmp_path):
    rows = [chat(f"Question number {i}: what is {i} + {i}?", f"It is {2 * i}.") for i in range(8)]
    rows += [chat("Tell me a long story. " * 40, ANSWER),       # line 9: cut at 64
             chat("Question number 3: what is 3 + 3?", "It is 6."),  # line 10: exact copy of 4
             chat("Say nothing.", ""),                          # line 11: empty answer
             {"messages": [{"role": "robot", "content": "x"}]}]  # line 12: refused by check
    return write_jsonl(tmp_path / "mixed.jsonl", rows)


def test_report_measures_with_the_chat_template(mixed_file, demo_tokenizer):
    rep = report(mixed_file, demo_tokenizer, max_length=64)
    examples = check(mixed_file).examples
    expected = [encode(e, demo_tokenizer, 64) for e in examples]
    assert rep.tokens == [e.length for e in expected]  # the lengths training will see
    assert rep.trained == [e.trained_tokens for e in expected]
    assert [str(w) for w in rep.truncated] == ["mixed.jsonl line 9"] and rep.tokens[8] > 64
    assert [w.number for w in rep.nothing_trained] == [9]  # the answer lies beyond token 64
    kept = sum(min(n, 64) for n in rep.tokens)
    assert rep.trained_fraction == pytest.approx(sum(rep.trained) / kept)
    values = sorted(rep.tokens)
    p = rep.percentiles()
    assert (p["min"], p["max"], p["p50"]) == (values[0], values[-1], values[5 - 1])
    assert [str(x) for x in rep.problems] == [
        "mixed.jsonl line 12: message 0 has role 'robot'; allowed: system, user, assistant"]
    assert [[str(rep.examples[i].where) for i in g] for g in rep.duplicates.exact] == [
        ["mixed.jsonl line 4", "mixed.jsonl line 10"]]
    assert [(w.number, answer) for w, answer in rep.short_answers] == [(11, "")]
    summary = rep.summary()
    for words in ("11 examples of 12 rows", "longer than max_length 64 (cut at the end): 1",
                  "mixed.jsonl line 9", "1 row(s) left out", "1 exact",
                  "nothing left to train after the cut", "tokens trained:"):
        assert words in summary, words
    table = rep.table()
    assert table.num_rows == 11 and table.filter(lambda r: r["truncated"])["where"] == [
        "mixed.jsonl line 9"]
    assert table[9]["duplicate_of"] == "mixed.jsonl line 4"
    json.dumps(rep.as_dict())  # JSON-ready


def test_batched_encoding_equals_one_at_a_time(demo_tokenizer):
    examples = [
        Example("a", messages=({"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Capital of France?"},
                               {"role": "assistant", "content": "Paris."},
                               {"role": "user", "content": "And Italy?"},
                               {"role": "assistant", "content": "Rome."})),
        Example("b", messages=({"role": "user", "content": "猫 or 🐕?"},
                               {"role": "assistant", "content": "e\u0301 \u2028 both"})),
        Example("c", prompt="Q: 2+2\nA:", completion=" 4"),
        Example("d", completion="Plain text, every token trained. " * 20),
        Example("e", messages=({"role": "user", "content": "long " * 100},
                               {"role": "assistant", "content": "short"})),
    ]
    for train_on in ("responses", "all"):
        one_by_one = [encode(e, demo_tokenizer, 48, train_on) for e in examples]
        assert encode_many(examples, demo_tokenizer, 48, train_on) == one_by_one
        assert measure_many(examples, demo_tokenizer, 48, train_on) == [
            (e.length, e.trained_tokens) for e in one_by_one]


def test_a_template_refusal_leaves_the_row_out_of_the_report(tmp_path, demo_tokenizer):
    import copy

    strict = copy.deepcopy(demo_tokenizer)
    strict.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                            "{{ raise_exception('no system turns') }}{% endif %}"
                            "{{ m['content'] }}{% endfor %}")
    path = write_jsonl(tmp_path / "d.jsonl", [chat("hi", "hello"), chat("hi", "yo", system="s")])
    rep = report(path, strict, max_length=64)
    assert [str(e.where) for e in rep.examples] == ["d.jsonl line 1"]
    assert (rep.problems[0].where.file, rep.problems[0].where.number) == ("d.jsonl", 2)
    assert "d.jsonl line 2: the model's chat template refused" in str(rep.problems[0])
    with pytest.raises(DataError, match="no example could be rendered"):
        report(write_jsonl(tmp_path / "e.jsonl", [chat("x", "y", system="s")]), strict)


def test_histogram_and_highlighted_example(mixed_file, demo_tokenizer, tmp_path):
    from workbench.plots.lengths import length_histogram_png
    from workbench.ui.data_view import example_html, pick

    rep = report(mixed_file, demo_tokenizer, max_length=64)
    png = length_histogram_png(rep, tmp_path / "h.png")
    assert png.startswith(b"\x89PNG") and (tmp_path / "h.png").read_bytes() == png
    roomy = report(mixed_file, demo_tokenizer, max_length=100_000)  # max_length off the chart
    assert length_histogram_png(roomy).startswith(b"\x89PNG")

    assert pick(rep, "longest").where.number == 9
    assert str(pick(rep, "line 10").where) == "mixed.jsonl line 10"
    assert pick(rep, -1) is rep.examples[-1]
    with pytest.raises(DataError, match="no example at 'line 99'"):
        pick(rep, "line 99")
    html = example_html(pick(rep, 0), demo_tokenizer, rep.max_length)
    assert '<span style="background:#c7e9c0">It is 0.&lt;|im_end|&gt;\n</span>' in html
    cut = example_html(pick(rep, "longest"), demo_tokenizer, rep.max_length)
    assert "line-through\">" in cut and "jumps over the lazy dog" in cut


def test_cli_report_writes_histogram_and_json(mixed_file, demo_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "data", "report", str(mixed_file), "--model", "demo",
         "--max-length", "64", "--json", "r.json"], capture_output=True, text=True,
        cwd=tmp_path, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert "tokens per example: min" in result.stdout and "histogram: mixed-lengths.png" in \
        result.stdout
    assert (tmp_path / "mixed-lengths.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["truncated"] == ["mixed.jsonl line 9"] and saved["max_length"] == 64
    refused = subprocess.run(
        [sys.executable, "-m", "workbench", "data", "report", str(tmp_path / "none.jsonl")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert refused.returncode == 2 and "none.jsonl' not found" in refused.stderr
    assert "Traceback" not in refused.stderr
