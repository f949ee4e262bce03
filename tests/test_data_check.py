"""`workbench data check` over a corpus of malformed and edge-case files (tests/data_corpus).

Every malformed file is refused with each of its problems named by file and line, by the
Python API, by training (before any model loads) and by the CLI, without a traceback.
Every edge case is accepted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.data import check, load_examples
from workbench.errors import DataError

CORPUS = Path(__file__).resolve().parent / "data_corpus"

# file -> the problems `check` must report, in file order; a tuple holds several parts of
# one problem. Every file-level or line-level problem starts with the file name.
REFUSED = {
    "bad_json_line.jsonl": ["bad_json_line.jsonl line 3: not valid JSON (Expecting ','"],
    "not_utf8.jsonl": ["not_utf8.jsonl line 2: bytes that are not UTF-8 (b'\\xe9",
                       "not_utf8.jsonl line 4: bytes that are not UTF-8 (b'\\xef"],
    "utf16.jsonl": ["utf16.jsonl: the file is UTF-16"],
    "unknown_keys.jsonl": [("unknown_keys.jsonl line 1: cannot tell the format from keys "
                            "['answer', 'question']", "Accepted: messages", "prompt_completion "
                            "(prompt, completion)", "'question' -> prompt")],
    "unknown_role.jsonl": ["unknown_role.jsonl line 2: message 0 has role 'robot'; allowed: "
                           "system, user, assistant",
                           "unknown_role.jsonl line 3: message 0 has role 'tool'"],
    "non_string_content.jsonl": [
        "non_string_content.jsonl line 1: message 0 'content' must be a string, got a number",
        ("non_string_content.jsonl line 2: message 0 'content' must be a string, got an array",
         "join the text parts"),
        "non_string_content.jsonl line 3: message 1 'content' must be a string, got null"],
    "no_assistant.jsonl": ["no_assistant.jsonl line 2: no assistant turn, so nothing to train "
                           "on; add the answer as"],
    "empty.jsonl": ["empty.jsonl: the file has no rows"],
    "blank_lines_only.jsonl": ["blank_lines_only.jsonl: the file has no rows"],
    "empty_array.json": ["empty_array.json: the file has no rows"],
    "mixed_formats.jsonl": [("mixed_formats.jsonl line 2: missing 'text'", "looks like "
                             "prompt_completion but the file is text (detected from line 1)")],
    "many_problems.jsonl": [
        "many_problems.jsonl line 2: not valid JSON",
        "many_problems.jsonl line 3: bytes that are not UTF-8",
        ("many_problems.jsonl line 4: message 0 has role 'bot'", "did you mean 'assistant'?"),
        "many_problems.jsonl line 5: message 0 'content' must be a string, got a number",
        "many_problems.jsonl line 6: no assistant turn",
        "many_problems.jsonl line 7: expected an object with messages keys, got an array"],
    "not_object.jsonl": ["not_object.jsonl line 2: expected an object with messages keys, got "
                         "a string",
                         "not_object.jsonl line 3: expected an object with messages keys, got "
                         "a number"],
    "bad_array.json": ["bad_array.json line 4: not valid JSON (Expecting ',' delimiter"],
    "jsonl_named_json.json": [("jsonl_named_json.json line 2: not valid JSON (Extra data",
                               "name the file .jsonl")],
    "array_named_jsonl.jsonl": ["array_named_jsonl.jsonl: holds a JSON array, not one JSON "
                                "object per line; rename it to array_named_jsonl.json"],
    "bad_cells.csv": ["bad_cells.csv line 3: 3 cells but the header names 2 columns"],
    "short_row.csv": ["short_row.csv line 3: only 1 of the 2 cells the header names"],
    "empty_messages.jsonl": ["empty_messages.jsonl line 2: 'messages' must be a non-empty list "
                             "of {role, content} objects, got an empty list"],
    "sharegpt_bad_from.jsonl": ["sharegpt_bad_from.jsonl line 2: message 1 has from 'bot'; "
                                "allowed: human"],
    "empty_text.jsonl": ["empty_text.jsonl line 2: 'text' is empty, so there is nothing to "
                         "train on"],
    "missing_output.jsonl": [("missing_output.jsonl line 2: missing 'output' (keys found: "
                              "['instruction', 'response'])", "'response' -> completion")],
    "unsupported.txt": ["unsupported.txt: unsupported file type '.txt'"],
    "bad_parquet.parquet": ["bad_parquet.parquet: not a readable Parquet file"],
    "turn_not_object.jsonl": [("turn_not_object.jsonl line 1: message 0 must be an object with "
                               "'role' and 'content', got a string", "message 1 must be")],
    "sharegpt_keys_in_messages.jsonl": ["sharegpt_keys_in_messages.jsonl line 1: message 0 has "
                                        "ShareGPT keys 'from' and 'value'"],
    "truncated_last_line.jsonl": ["truncated_last_line.jsonl line 2: not valid JSON "
                                  "(Unterminated string"],
    "lone_surrogate.jsonl": ["lone_surrogate.jsonl line 2: message 0 'content' holds a lone "
                             "surrogate"],
    "not_a_dataset_folder": ["not_a_dataset_folder: a folder, but not one saved by `datasets`"],
    # preference rows (train.method dpo / kto)
    "pref_bad.jsonl": [
        "pref_bad.jsonl line 2: 'chosen' and 'rejected' are the same answer",
        "pref_bad.jsonl line 3: missing 'rejected' (keys found: ['chosen', 'prompt'])",
        "pref_bad.jsonl line 4: 'prompt' must be a string or a non-empty list of {role, content} "
        "turns, got a number",
        "pref_bad.jsonl line 5: 'prompt' must end with a user turn (the answers reply to it), "
        "but its last turn is the assistant's",
        "pref_bad.jsonl line 6: 'chosen' as a list must hold exactly one {\"role\": "
        "\"assistant\""],
    "pref_bad_labels.jsonl": [
        "pref_bad_labels.jsonl line 2: 'label' must be true (a good answer) or false (a bad "
        "one), got 'yes'",
        "pref_bad_labels.jsonl line 3: 'label' must be true (a good answer) or false (a bad "
        "one), got 1"],
    "pref_bad_ratings.jsonl": [
        "pref_bad_ratings.jsonl line 2: 'choice' must be one of a, b, tie, both_bad, got 'c'",
        "pref_bad_ratings.jsonl line 3: 'a' must be an object with the model's 'answer'"],
}

# file -> (format, examples)
ACCEPTED = {
    "bom.jsonl": ("messages", 2),
    "crlf.jsonl": ("messages", 2),
    "blank_lines.jsonl": ("messages", 3),
    "no_trailing_newline.jsonl": ("messages", 2),
    "array.json": ("messages", 3),
    "bom_crlf_array.json": ("messages", 2),
    "wrapped.json": ("messages", 2),
    "single_chat.json": ("messages", 1),
    "system_turns.jsonl": ("messages", 2),
    "multi_turn.jsonl": ("messages", 1),
    "unicode.jsonl": ("messages", 6),
    "escaped_unicode.jsonl": ("messages", 1),
    "sharegpt.jsonl": ("messages", 2),
    "extra_keys.jsonl": ("messages", 2),
    "alpaca.csv": ("alpaca", 2),
    "prompt_completion.jsonl": ("prompt_completion", 2),
    "prompt_completion.parquet": ("prompt_completion", 2),
    "text.jsonl": ("text", 2),
    "pref_pairs.jsonl": ("preference", 3),
    "pref_unpaired.jsonl": ("unpaired", 2),
    "pref_ratings.jsonl": ("ratings", 3),
}


def test_the_tables_cover_every_corpus_file():
    files = {path.name for path in CORPUS.iterdir()}
    assert files == set(REFUSED) | set(ACCEPTED)
    assert not set(REFUSED) & set(ACCEPTED)


def _parts(expected) -> tuple:
    return expected if isinstance(expected, tuple) else (expected,)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_malformed_file_is_refused_naming_every_problem(name, capsys):
    path = CORPUS / name
    result = check(path)
    problems = [str(p) for p in result.problems]
    assert not result.ok
    assert len(problems) == len(REFUSED[name]), problems
    for problem, expected in zip(problems, REFUSED[name]):
        for part in _parts(expected):
            assert part in problem, (part, problem)
    # training reads data through the same check: one error naming every problem
    with pytest.raises(DataError) as caught:
        load_examples(str(path))
    assert all(part in str(caught.value) for e in REFUSED[name] for part in _parts(e))
    # the CLI: exit 2, every problem on stderr, no traceback
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{len(problems)} problem(s)" in err
    assert all(problem in err for problem in problems)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_an_edge_case_file_is_accepted(name, capsys):
    fmt, count = ACCEPTED[name]
    result = check(CORPUS / name)
    assert result.ok, result.problems
    assert (result.format, len(result.examples)) == (fmt, count)
    assert load_examples(str(CORPUS / name))[0] == fmt
    assert main(["data", "check", str(CORPUS / name)]) == 0
    out = capsys.readouterr().out
    assert f"{name}: usable. {count} good rows" in out and f"format {fmt}" in out


def test_unicode_arrives_unchanged():
    rows = [json.loads(line) for line in (CORPUS / "unicode.jsonl").read_text("utf-8").split("\n")
            if line]
    examples = check(CORPUS / "unicode.jsonl").examples
    assert [list(e.messages) for e in examples] == [r["messages"] for r in rows]
    assert examples[4].messages[1]["content"] == "one\u2028two\u2029three"
    escaped = check(CORPUS / "escaped_unicode.jsonl").examples[0].messages
    assert escaped[1]["content"] == "\U0001F600 你好"


def test_array_items_are_named_by_the_line_they_start_on(tmp_path):
    places = [e.where for e in check(CORPUS / "array.json").examples]
    assert [(w.unit, w.number, w.item) for w in places] == [
        ("line", 2, 1), ("line", 14, 2), ("line", 26, 3)]
    assert str(places[0]) == "array.json line 2 (item 1)"
    path = tmp_path / "items.json"
    path.write_text('[\n  {"prompt": "a", "completion": "b"},\n\n  {"prompt": "c",\n'
                    '   "completion": 7}\n]\n')
    (problem,) = check(path).problems
    assert str(problem) == "items.json line 4 (item 2): 'completion' must be a string, got a number"


def test_warnings_name_duplicates_empty_answers_and_unanswered_turns(tmp_path):
    def chat(*turns):
        return {"messages": [{"role": r, "content": c} for r, c in turns]}

    rows = [chat(("user", "Hi"), ("assistant", "Hello there")),
            chat(("user", "hi "), ("assistant", "Hello  there")),  # same after normalizing
            chat(("user", "Ping"), ("assistant", "")),
            chat(("user", "2+2?"), ("assistant", "4"), ("user", "and 3+3?"))]
    path = tmp_path / "warn.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = check(path)
    assert result.ok and len(result.examples) == 4
    assert [str(w) for w in result.warnings] == [
        "warn.jsonl line 2: exact duplicate of warn.jsonl line 1 (`workbench data clean` drops it)",
        "warn.jsonl line 3: an empty answer; the model learns to answer like this",
        "warn.jsonl line 4: a very short answer ('4'); the model learns to answer like this",
        "warn.jsonl line 4: ends with a user turn that has no answer; nothing is trained on it"]
    summary = result.summary()
    assert "warn.jsonl: usable. 4 good rows of 4 read; format messages" in summary
    assert "4 warning(s)" in summary


def test_many_bad_lines_are_all_counted_and_listed_on_request(tmp_path, capsys):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"".join(b'{"text": "caf\xe9 %d"}\n' % i for i in range(150)))
    assert len(check(path).problems) == 150
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "latin1.jsonl line 100:" in err and "latin1.jsonl line 101:" not in err
    assert "... and 50 more (--limit 0 lists all)" in err
    assert main(["data", "check", str(path), "--limit", "0"]) == 2
    assert "latin1.jsonl line 150: bytes that are not UTF-8" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"150 problem\(s\)[\s\S]*and 130 more"):
        load_examples(str(path))


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_cli_check_in_a_real_process():
    bad = run_cli("data", "check", str(CORPUS / "many_problems.jsonl"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    for line in range(2, 8):
        assert f"many_problems.jsonl line {line}: " in bad.stderr
    good = run_cli("data", "check", str(CORPUS / "unicode.jsonl"))
    assert good.returncode == 0 and good.stderr == ""
    assert "unicode.jsonl: usable. 6 good rows" in good.stdout
    missing = run_cli("data", "check", "no-such-file.jsonl")
    assert missing.returncode == 2 and "no-such-file.jsonl' not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_training_refuses_unusable_data_before_loading_a_model(tmp_path):
    from conftest import tiny_config
    from workbench.engine.run import Run

    config = tiny_config("/nonexistent/model", CORPUS / "many_problems.jsonl", tmp_path / "runs")
    with pytest.raises(DataError) as caught:
        Run(config).execute()
    assert "6 problem(s)" in str(caught.value)
    assert all(f"many_problems.jsonl line {n}:" in str(caught.value) for n in range(2, 8))
    assert not (tmp_path / "runs").exists()
    # an eval file is checked the same way
    config = tiny_config("/nonexistent/model", CORPUS / "bom.jsonl", tmp_path / "runs")
    config = config.with_overrides([f"data.eval_path={CORPUS / 'no_assistant.jsonl'}"])
    with pytest.raises(DataError, match="no_assistant.jsonl line 2: no assistant turn"):
        Run(config).execute()


def test_import_workbench_data_stays_light():
    code = ("import sys, workbench.data, workbench.data.dedup; "
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'matplotlib', 'pyarrow') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
