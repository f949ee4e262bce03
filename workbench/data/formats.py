"""Row formats: detect them from the keys and turn every row into one `Example` shape.

- `messages`: {"messages": [{"role": ..., "content": ...}, ...]} (ShareGPT's
  {"conversations": [{"from": "human", "value": ...}]} is accepted too)
- `alpaca`: {"instruction": ..., "input": optional, "output": ...}
- `prompt_completion`: {"prompt": ..., "completion": ...}, used as raw text, no template
- `text`: {"text": ...}, raw text, every token trained

For reward tuning (train.method grpo), prompts with any other columns the reward functions
read (an `answer` to compare with, say): {"prompt": ..., "answer": ...} (`prompts`); chat,
alpaca and prompt_completion rows work too, their answer becoming the `answer` column.

For preference tuning (train.method dpo or kto), TRL's shapes:

- `preference`: {"prompt": ..., "chosen": ..., "rejected": ...}: a better and a worse answer
- `unpaired`: {"prompt": ..., "completion": ..., "label": true | false}: one answer, good or bad
- `ratings`: a row of the Rate tab's ratings.jsonl (prompt, a, b, choice)

A prompt is a string (one user turn) or a list of {role, content} turns; an answer is a
string or a list holding the assistant turn. These formats, like `messages` and `alpaca`,
are rendered with the model's chat template.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.data.loading import Row, json_type
from workbench.errors import DataError, Problem, Where

FORMAT_KEYS = {  # in the order rows are matched: unpaired before its subset prompt_completion
    "messages": ({"messages"}, {"conversations"}),
    "alpaca": ({"instruction", "output"},),
    "preference": ({"prompt", "chosen", "rejected"},),
    "unpaired": ({"prompt", "completion", "label"},),
    "ratings": ({"prompt", "a", "b", "choice"},),
    "prompt_completion": ({"prompt", "completion"},),
    "text": ({"text"},),
    "prompts": ({"prompt"},),  # last: any row with a prompt and no answer keys
}
PREFERENCE_FORMATS = ("preference", "unpaired", "ratings")
RATING_CHOICES = ("a", "b", "tie", "both_bad")
RAW_FORMATS = ("prompt_completion", "text")  # used as plain text: no chat template
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant"}
# Role names other tools use, for a "did you mean" in the refusal (they are not accepted).
ROLE_HINTS = {"human": "user", "gpt": "assistant", "model": "assistant", "bot": "assistant",
              "ai": "assistant", "chatbot": "assistant", "developer": "system"}


@dataclass(frozen=True)
class Example:
    """One training example: chat turns, or a raw prompt + completion (prompt may be '')."""

    where: Where
    messages: tuple[dict, ...] | None = None  # preference formats: the prompt's turns
    prompt: str = ""
    completion: str = ""  # unpaired: the answer judged
    chosen: str | None = None  # preference and ratings: the better answer (ratings: a's)
    rejected: str | None = None  # ... and the worse one (ratings: b's)
    label: bool | None = None  # unpaired: whether the answer is good
    choice: str | None = None  # ratings: a, b, tie or both_bad
    columns: dict | None = None  # prompts: the row's other keys, for reward functions

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None or self.label is not None

    @property
    def is_prompt_only(self) -> bool:
        return self.columns is not None


ACCEPTED = ("messages (messages, or ShareGPT conversations), alpaca (instruction, output, "
            "optional input), prompt_completion (prompt, completion), text (text); for "
            "preference tuning: preference (prompt, chosen, rejected), unpaired (prompt, "
            "completion, label), ratings (prompt, a, b, choice); for reward tuning: prompts "
            "(prompt, any other columns)")
# Column names other tools use, and what to rename them to.
KEY_HINTS = {"question": "prompt", "query": "prompt", "answer": "completion",
             "response": "completion (or output, with instruction)", "conversation":
             "conversations", "dialog": "messages", "chat": "messages", "content": "text",
             "preferred": "chosen", "better": "chosen", "worse": "rejected",
             "dispreferred": "rejected", "kto_label": "label"}


def is_chat_format(fmt: str) -> bool:
    """Whether prompts of this format are rendered with the chat template. `auto` (a format
    never detected, as for a bare adapter folder) counts as chat: instruct models are."""
    return fmt not in RAW_FORMATS


def row_format(value) -> str | None:
    """The format whose keys a row has, or None."""
    if not isinstance(value, dict):
        return None
    keys = set(value)
    for name, alternatives in FORMAT_KEYS.items():
        if any(required <= keys for required in alternatives):
            return name
    return None


@dataclass(frozen=True)
class FormatChoice:
    """The format of a file's rows, where that came from (`detected from line 1`), or the
    problem that no format fits."""

    format: str | None
    source: str = ""
    problem: Problem | None = None


def choose_format(rows: list[Row], requested: str = "auto") -> FormatChoice:
    """The first row whose keys match an accepted format decides; a file where no row
    matches gets one problem naming the keys found."""
    if requested != "auto":
        return FormatChoice(requested, "set by data.format")
    for row in rows:
        fmt = row_format(row.value)
        if fmt is not None:
            return FormatChoice(fmt, f"detected from {row.where.place or row.where}")
    objects = [row for row in rows if isinstance(row.value, dict)]
    if not objects:
        first = rows[0]
        return FormatChoice(None, problem=Problem(
            f"expected a JSON object per example, got {json_type(first.value)}", first.where))
    first = objects[0]
    keys = sorted(map(str, first.value))
    others = {tuple(sorted(map(str, r.value))) for r in objects} - {tuple(keys)}
    more = f"; other rows have keys {sorted(map(list, others))[:3]}" if others else ""
    return FormatChoice(None, problem=Problem(
        f"cannot tell the format from keys {keys}{more}. Accepted: {ACCEPTED}."
        f"{_key_hints(keys)} Rename the columns or set data.format", first.where))


def _key_hints(keys) -> str:
    hints = [f"{key!r} -> {KEY_HINTS[key.lower()]}" for key in keys if key.lower() in KEY_HINTS]
    return f" Perhaps rename {', '.join(hints)}." if hints else ""


def convert_rows(rows: list[Row], fmt: str, system_prompt: str | None = None,
                 detected: str = "") -> tuple[list[tuple[Row, Example]], list[Problem]]:
    """Check and convert every row: (row, example) for the good ones, a problem for each
    bad one. `detected` says where the format came from, for rows of another format."""
    convert = CONVERTERS[fmt]
    converted, problems = [], []
    for row in rows:
        if not isinstance(row.value, dict):
            problems.append(Problem(f"expected an object with {fmt} keys, got "
                                    f"{json_type(row.value)}", row.where))
            continue
        try:
            converted.append((row, convert(row, system_prompt)))
        except DataError as exc:
            message = exc.message
            own = row_format(row.value)
            if own is not None and own != fmt:  # a row of another format: say so
                message += (f"; this row looks like {own} but the file is {fmt} "
                            f"({detected or 'set by data.format'}): keep one format per file")
            elif own is None and fmt != "messages":
                message += f".{_key_hints(sorted(map(str, row.value)))}".rstrip(".")
            problems.append(Problem(message, row.where))
    return converted, problems


def _string(row: Row, key: str, optional: bool = False) -> str:
    value = row.value.get(key)
    if value is None and optional:
        return ""
    if value is None:
        raise DataError(f"missing {key!r} (keys found: {sorted(map(str, row.value))})", row.where)
    if not isinstance(value, str):
        raise DataError(f"{key!r} must be a string, got {json_type(value)}", row.where)
    return _text(row, repr(key), value)


def _text(row: Row, label: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a "\ud83d" escape without its pair parses, but is no text
        raise DataError(f"{label} holds a lone surrogate ({value[exc.start]!r} at character "
                        f"{exc.start}), which no tokenizer accepts; fix the \\u escape in the "
                        "file", row.where) from None
    return value


def _from_messages(row: Row, system_prompt: str | None) -> Example:
    if "messages" not in row.value and "conversations" not in row.value:
        raise DataError(f"missing 'messages' (keys found: {sorted(map(str, row.value))})",
                        row.where)
    sharegpt = "messages" not in row.value
    turns = row.value.get("conversations") if sharegpt else row.value.get("messages")
    if not isinstance(turns, list) or not turns:
        key, shape = ("conversations", "{from, value}") if sharegpt else ("messages",
                                                                          "{role, content}")
        got = "an empty list" if isinstance(turns, list) else json_type(turns)
        raise DataError(f"{key!r} must be a non-empty list of {shape} objects, got {got}",
                        row.where)
    messages, problems = [], []
    for index, turn in enumerate(turns):
        try:  # name every bad turn of the row, not just the first
            messages.append(_turn(row, index, turn, sharegpt))
        except DataError as exc:
            problems.append(exc.message)
    if problems:
        raise DataError("; ".join(problems), row.where)
    if not any(m["role"] == "assistant" for m in messages):
        answer = ('{"from": "gpt", "value": ...}' if sharegpt
                  else '{"role": "assistant", "content": ...}')
        raise DataError(f"no assistant turn, so nothing to train on; add the answer as {answer}",
                        row.where)
    return Example(row.where, messages=_with_system(tuple(messages), system_prompt))


def _turn(row: Row, index: int, turn, sharegpt: bool) -> dict:
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    if not isinstance(turn, dict):
        raise DataError(f"message {index} must be an object with {role_key!r} and "
                        f"{content_key!r}, got {json_type(turn)}", row.where)
    if not sharegpt and role_key not in turn and {"from", "value"} <= set(turn):
        raise DataError(f"message {index} has ShareGPT keys 'from' and 'value'; under "
                        "'messages' use 'role' and 'content' (or name the list 'conversations')",
                        row.where)
    role, content = turn.get(role_key), turn.get(content_key)
    if sharegpt and isinstance(role, str):
        role = SHAREGPT_ROLES.get(role, role)
    if not isinstance(role, str) or role not in ROLES:
        allowed = ", ".join(SHAREGPT_ROLES if sharegpt else ROLES)
        lower = role.lower() if isinstance(role, str) else ""
        alias = ROLE_HINTS.get(lower, lower if lower in ROLES else None)
        hint = f" (did you mean {alias!r}?)" if alias and not sharegpt else ""
        raise DataError(f"message {index} has {role_key} {turn.get(role_key)!r}; allowed: "
                        f"{allowed}{hint}", row.where)
    if not isinstance(content, str):
        hint = (" (join the text parts into one string)"
                if isinstance(content, list) else "")
        raise DataError(f"message {index} {content_key!r} must be a string, got "
                        f"{json_type(content)}{hint}", row.where)
    return {"role": role, "content": _text(row, f"message {index} {content_key!r}", content)}


def _with_system(messages: tuple[dict, ...], system_prompt: str | None) -> tuple[dict, ...]:
    if system_prompt and messages[0]["role"] != "system":
        return ({"role": "system", "content": system_prompt},) + messages
    return messages


def _from_alpaca(row: Row, system_prompt: str | None) -> Example:
    instruction = _string(row, "instruction")
    extra = _string(row, "input", optional=True)
    output = _string(row, "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = ({"role": "user", "content": user}, {"role": "assistant", "content": output})
    return Example(row.where, messages=_with_system(messages, system_prompt))


def _from_prompt_completion(row: Row, system_prompt: str | None) -> Example:
    return Example(row.where, prompt=_string(row, "prompt"), completion=_string(row, "completion"))


def _from_text(row: Row, system_prompt: str | None) -> Example:
    text = _string(row, "text")
    if not text.strip():
        raise DataError("'text' is empty, so there is nothing to train on; delete the row",
                        row.where)
    return Example(row.where, completion=text)


def _prompt_turns(row: Row, system_prompt: str | None) -> tuple[dict, ...]:
    """A preference row's prompt as turns: a string is one user turn; a list is checked as
    `messages` turns and must end with a user turn."""
    value = row.value.get("prompt")
    if isinstance(value, str):
        turns = ({"role": "user", "content": _text(row, "'prompt'", value)},)
    elif isinstance(value, list) and value:
        problems, turns = [], []
        for index, turn in enumerate(value):
            try:
                turns.append(_turn(row, index, turn, sharegpt=False))
            except DataError as exc:
                problems.append(exc.message)
        if problems:
            raise DataError("; ".join(problems), row.where)
        if turns[-1]["role"] != "user":
            raise DataError(f"'prompt' must end with a user turn (the answers reply to it), "
                            f"but its last turn is the {turns[-1]['role']}'s", row.where)
        turns = tuple(turns)
    else:
        raise DataError(f"'prompt' must be a string or a non-empty list of {{role, content}} "
                        f"turns, got {json_type(value) if value != [] else 'an empty list'}",
                        row.where)
    return _with_system(turns, system_prompt)


def _answer(row: Row, key: str) -> str:
    """An answer: a string, or a list holding one assistant turn (TRL's conversational form)."""
    value = row.value.get(key)
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise DataError(f"{key!r} as a list must hold exactly one {{\"role\": \"assistant\", "
                            f"\"content\": ...}} turn", row.where)
        value = value[0].get("content")
        if not isinstance(value, str):
            raise DataError(f"{key!r}: the assistant turn's content must be a string, got "
                            f"{json_type(value)}", row.where)
        return _text(row, repr(key), value)
    return _string(row, key)


def _from_preference(row: Row, system_prompt: str | None) -> Example:
    prompt = _prompt_turns(row, system_prompt)
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    if chosen.strip() == rejected.strip():
        raise DataError("'chosen' and 'rejected' are the same answer, so the pair teaches "
                        "nothing; fix or delete the line", row.where)
    return Example(row.where, messages=prompt, chosen=chosen, rejected=rejected)


def _from_unpaired(row: Row, system_prompt: str | None) -> Example:
    prompt, completion = _prompt_turns(row, system_prompt), _answer(row, "completion")
    label = row.value.get("label")
    if not isinstance(label, bool):
        raise DataError(f"'label' must be true (a good answer) or false (a bad one), got "
                        f"{label!r}", row.where)
    return Example(row.where, messages=prompt, completion=completion, label=label)


def _from_rating(row: Row, system_prompt: str | None) -> Example:
    prompt = _prompt_turns(row, system_prompt)
    choice = row.value.get("choice")
    if choice not in RATING_CHOICES:
        raise DataError(f"'choice' must be one of {', '.join(RATING_CHOICES)}, got {choice!r}",
                        row.where)
    answers = []
    for side in ("a", "b"):
        value = row.value.get(side)
        if not isinstance(value, dict) or not isinstance(value.get("answer"), str):
            raise DataError(f"{side!r} must be an object with the model's 'answer' (a string), "
                            f"got {json_type(value)}", row.where)
        answers.append(_text(row, f"'{side}' answer", value["answer"]))
    if choice in ("a", "b"):
        winner = 0 if choice == "a" else 1
        return Example(row.where, messages=prompt, chosen=answers[winner],
                       rejected=answers[1 - winner], choice=choice)
    return Example(row.where, messages=prompt, chosen=answers[0], rejected=answers[1],
                   choice=choice)


def _from_prompts(row: Row, system_prompt: str | None) -> Example:
    columns = {str(k): v for k, v in row.value.items() if k != "prompt"}
    return Example(row.where, messages=_prompt_turns(row, system_prompt), columns=columns)


CONVERTERS = {"messages": _from_messages, "alpaca": _from_alpaca,
              "prompt_completion": _from_prompt_completion, "text": _from_text,
              "preference": _from_preference, "unpaired": _from_unpaired,
              "ratings": _from_rating, "prompts": _from_prompts}
