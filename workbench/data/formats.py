"""Row formats: detect them from the keys and turn every row into one `Example` shape.

- `messages`: {"messages": [{"role": ..., "content": ...}, ...]} (ShareGPT's
  {"conversations": [{"from": "human", "value": ...}]} is accepted too)
- `alpaca`: {"instruction": ..., "input": optional, "output": ...}
- `prompt_completion`: {"prompt": ..., "completion": ...}, used as raw text, no template
- `text`: {"text": ...}, raw text, every token trained

Chat formats (`messages`, `alpaca`) are rendered later with the model's chat template.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.data.loading import Row, raise_if_problems
from workbench.errors import DataError

FORMAT_KEYS = {
    "messages": ({"messages"}, {"conversations"}),
    "alpaca": ({"instruction", "output"},),
    "prompt_completion": ({"prompt", "completion"},),
    "text": ({"text"},),
}
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant"}


@dataclass(frozen=True)
class Example:
    """One training example: chat turns, or a raw prompt + completion (prompt may be '')."""

    where: str
    messages: tuple[dict, ...] | None = None
    prompt: str = ""
    completion: str = ""


def detect_format(rows: list[Row], requested: str = "auto") -> str:
    """The format of the rows: the requested one, or the one the first row's keys match."""
    if requested != "auto":
        return requested
    first = rows[0]
    if not isinstance(first.value, dict):
        raise DataError(f"{first.where}: expected a JSON object per example, got "
                        f"{type(first.value).__name__}")
    keys = set(first.value)
    for name, alternatives in FORMAT_KEYS.items():
        if any(required <= keys for required in alternatives):
            return name
    raise DataError(f"{first.where}: cannot tell the format from keys {sorted(map(str, keys))}; accepted: "
                    "messages (messages), alpaca (instruction, output), prompt_completion "
                    "(prompt, completion), text (text). Rename the columns or set data.format")


def to_examples(rows: list[Row], fmt: str, system_prompt: str | None = None) -> list[Example]:
    """Check and convert every row; raises DataError listing every bad row by file and line."""
    convert = CONVERTERS[fmt]
    examples, problems = [], []
    for row in rows:
        if not isinstance(row.value, dict):
            problems.append(f"{row.where}: expected an object with {fmt} keys, got "
                            f"{type(row.value).__name__}")
            continue
        try:
            examples.append(convert(row, system_prompt))
        except DataError as exc:
            problems.append(str(exc))
    raise_if_problems(problems)
    return examples


def _string(row: Row, key: str, optional: bool = False) -> str:
    value = row.value.get(key)
    if value is None and optional:
        return ""
    if value is None:
        raise DataError(f"{row.where}: missing {key!r} (keys found: {sorted(map(str, row.value))})")
    if not isinstance(value, str):
        raise DataError(f"{row.where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _from_messages(row: Row, system_prompt: str | None) -> Example:
    sharegpt = "messages" not in row.value
    turns = row.value.get("conversations") if sharegpt else row.value.get("messages")
    if not isinstance(turns, list) or not turns:
        key, shape = ("conversations", "{from, value}") if sharegpt else ("messages",
                                                                          "{role, content}")
        raise DataError(f"{row.where}: {key!r} must be a non-empty list of {shape} objects")
    messages = []
    for index, turn in enumerate(turns):
        messages.append(_turn(row, index, turn, sharegpt))
    if not any(m["role"] == "assistant" for m in messages):
        answer = ('{"from": "gpt", "value": ...}' if sharegpt
                  else '{"role": "assistant", "content": ...}')
        raise DataError(f"{row.where}: no assistant turn, so nothing to train on; add the "
                        f"answer as {answer}")
    return Example(row.where, messages=_with_system(tuple(messages), system_prompt))


def _turn(row: Row, index: int, turn, sharegpt: bool) -> dict:
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    if not isinstance(turn, dict):
        raise DataError(f"{row.where}: message {index} must be an object with "
                        f"{role_key!r} and {content_key!r}")
    role, content = turn.get(role_key), turn.get(content_key)
    role = SHAREGPT_ROLES.get(role, role) if sharegpt else role
    if role not in ROLES:
        allowed = ", ".join(SHAREGPT_ROLES if sharegpt else ROLES)
        raise DataError(f"{row.where}: message {index} has {role_key} {turn.get(role_key)!r}; "
                        f"allowed: {allowed}")
    if not isinstance(content, str):
        raise DataError(f"{row.where}: message {index} {content_key!r} must be a string, got "
                        f"{type(content).__name__}")
    return {"role": role, "content": content}


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
    return Example(row.where, completion=_string(row, "text"))


CONVERTERS = {"messages": _from_messages, "alpaca": _from_alpaca,
              "prompt_completion": _from_prompt_completion, "text": _from_text}
