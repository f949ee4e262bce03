"""`workbench data clean`: drops with reasons, the log, the seeded split, Datasets out."""

import json
import os
import subprocess
import sys

import pytest

from conftest import write_jsonl
from workbench.config import DataSettings
from workbench.data import clean, load_splits
from workbench.errors import DataError


def chat(user, answer):
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def story(i):
    return (f"Story {i}: the {['red', 'blue', 'green', 'grey'][i % 4]} kite number {i * 7} "
            f"flew over hill {i * 13} while {i} birds sang songs of river {i * 3}.")


@pytest.fixture
def messy(tmp_path):
    rows = [chat(f"Tell story {i}", story(i)) for i in range(30)]   # lines 1-30
    rows.append(chat("Tell story 4", story(4)))                      # 31: exact copy of 5
    rows.append(chat("tell  STORY 7", story(7).upper()))             # 32: exact after normalizing
    near = story(9).replace("birds", "crows")
    rows.append(chat("Tell story 9", near))                          # 33: near copy of 10
    rows.append(chat("Hi", "Yo"))                                    # 34: too short (< 30 chars)
    rows.append(chat("Tell a very long story", "word " * 200))       # 35: too long (> 400 chars)
    path = write_jsonl(tmp_path / "messy.jsonl", rows)
    with path.open("a") as handle:
        handle.write("{broken\n")                                    # 36: not JSON
        handle.write(json.dumps({"messages": [{"role": "user", "content": "?"}]}) + "\n")  # 37
    return path


def test_clean_drops_with_reasons_logs_and_splits(messy, tmp_path):
    out = tmp_path / "clean"
    result = clean(messy, out, min_chars=30, max_chars=400, eval_fraction=0.2, seed=7)
    reasons = {d.where.number: (d.reason, d.detail) for d in result.dropped}
    assert reasons == {
        31: ("exact_duplicate", "same text as messy.jsonl line 5"),
        32: ("exact_duplicate", "same text as messy.jsonl line 8"),
        33: ("near_duplicate", reasons[33][1]),
        34: ("too_short", "22 characters < 30"),
        35: ("too_long", reasons[35][1]),
        36: ("invalid", reasons[36][1]),
        37: ("invalid", reasons[37][1]),
    }
    assert reasons[33][1].startswith("Jaccard 0.") and "with messy.jsonl line 10" in reasons[33][1]
    assert reasons[35][1].endswith("characters > 400") and "not valid JSON" in reasons[36][1]
    assert "no assistant turn" in reasons[37][1]
    assert len(result.train_rows) + len(result.eval_rows) == 30
    assert len(result.eval_rows) == 6 and result.eval.num_rows == 6 and result.train.num_rows == 24

    train = [json.loads(l) for l in (out / "train.jsonl").read_text().splitlines()]
    held = [json.loads(l) for l in (out / "eval.jsonl").read_text().splitlines()]
    assert train == result.train_rows and held == result.eval_rows
    assert sorted(map(json.dumps, train + held)) == sorted(
        json.dumps(chat(f"Tell story {i}", story(i))) for i in range(30))  # rows unchanged
    log = [json.loads(l) for l in (out / "dropped.jsonl").read_text().splitlines()]
    assert [d["where"] for d in log] == [f"messy.jsonl line {n}" for n in range(31, 38)]
    assert log[0]["row"] == chat("Tell story 4", story(4)) and log[5]["row"] is None
    summary = json.loads((out / "clean.json").read_text())
    assert summary["train"] == 24 and summary["dropped"]["invalid"] == 2
    assert summary["settings"]["seed"] == 7 and summary["settings"]["near_threshold"] == 0.8
    assert "kept 30, dropped 7" in result.summary()

    # the cleaned files train as they are: same format, and the split is kept
    splits = load_splits(DataSettings(train_path=str(out / "train.jsonl"),
                                      eval_path=str(out / "eval.jsonl")), seed=0)
    assert (splits.format, len(splits.train), len(splits.eval)) == ("messages", 24, 6)


def test_the_split_is_deterministic_disjoint_and_seeded(messy):
    first = clean(messy, eval_fraction=0.3, seed=1)
    again = clean(messy, eval_fraction=0.3, seed=1)
    other = clean(messy, eval_fraction=0.3, seed=2)
    assert (first.train_rows, first.eval_rows) == (again.train_rows, again.eval_rows)
    assert first.eval_rows != other.eval_rows
    as_text = lambda rows: {json.dumps(r) for r in rows}  # noqa: E731
    assert not as_text(first.train_rows) & as_text(first.eval_rows)
    assert len(first.eval_rows) == round(0.3 * 32)  # 37 rows - 2 invalid - 3 duplicates
    none = clean(messy, eval_fraction=0)
    assert none.eval_rows == [] and none.eval.num_rows == 0


def test_token_bounds_use_the_chat_template(messy, demo_tokenizer):
    from workbench.data.encoding import encode
    from workbench.data import check

    lengths = {e.where: encode(e, demo_tokenizer, 10**6).length for e in check(messy).examples}
    limit = sorted(lengths.values())[-3]  # keeps all but the two longest rows
    result = clean(messy, tokenizer=demo_tokenizer, max_tokens=limit, near_threshold=None,
                   eval_fraction=0)
    too_long = [d.where for d in result.dropped if d.reason == "too_long"]
    assert too_long == sorted((w for w, n in lengths.items() if n > limit),
                              key=lambda w: w.number)
    assert all(d.detail.endswith(f"tokens > {limit}") for d in result.dropped
               if d.reason == "too_long")
    assert not [d for d in result.dropped if d.reason == "near_duplicate"]  # near off
    with pytest.raises(DataError, match="give a tokenizer"):
        clean(messy, max_tokens=100)


def test_nothing_kept_is_refused_after_writing_the_log(messy, tmp_path):
    with pytest.raises(DataError, match=r"every row was dropped \(2 invalid, 35 too_long\)"):
        clean(messy, tmp_path / "out", max_chars=5)
    assert len((tmp_path / "out" / "dropped.jsonl").read_text().splitlines()) == 37


def test_cli_clean(messy, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "workbench", "data", "clean", *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})

    done = run(str(messy), "-o", "out", "--seed", "3", "--eval-fraction", "0.25")
    assert done.returncode == 0, done.stderr
    assert "kept 32, dropped 5" in done.stdout and "data.eval_path=out/eval.jsonl" in done.stdout
    assert len((tmp_path / "out" / "eval.jsonl").read_text().splitlines()) == 8
    refused = run(str(messy), "-o", "out2", "--max-tokens", "50")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "give a tokenizer (--model on the command line)" in refused.stderr


def test_to_dataset_from_a_path_a_check_or_rows(tmp_path):
    from workbench.data import check, to_dataset

    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b", "id": 1},
                                              {"prompt": "c", "completion": "d"}])
    from_path = to_dataset(path)
    assert from_path.column_names == ["prompt", "completion", "id"]
    assert from_path["id"] == [1, None]  # a missing key becomes None
    assert check(path).dataset()["prompt"] == ["a", "c"]
    with pytest.raises(DataError, match="cannot form one table"):
        to_dataset([{"id": 1}, {"id": "one"}])
    with pytest.raises(DataError, match="d2.jsonl line 1"):
        to_dataset(write_jsonl(tmp_path / "d2.jsonl", [{"text": 5}]))
