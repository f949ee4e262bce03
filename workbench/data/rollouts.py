"""Prompts for reward tuning (train.method grpo): each example becomes the text the model
continues, the user's prompt (what reward functions see) and the row's other columns.

    rows = prompt_rows(examples)                 # {"messages", "prompt", "columns"}
    batch = PromptCollator()(rows[:2])            # {"messages": [...], "prompts": [...],
                                                  #  "columns": {"answer": [...]}}

A chat, alpaca or prompt_completion example's answer becomes the `answer` column, so a
supervised dataset doubles as prompts with references (json_equal against `answer`).
"""

from __future__ import annotations

from workbench.data.formats import Example


def prompt_row(example: Example) -> dict:
    if example.columns is not None:  # a prompts row: as given
        turns, columns = list(example.messages), dict(example.columns)
    elif example.messages is not None:  # chat: up to the last answer, which is the reference
        turns = list(example.messages)
        last = max(i for i, m in enumerate(turns) if m["role"] == "assistant")
        turns, columns = turns[:last], {"answer": turns[last]["content"]}
    else:  # prompt_completion: raw text
        return {"messages": None, "raw": example.prompt, "prompt": example.prompt,
                "columns": {"answer": example.completion}}
    user = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
    return {"messages": turns, "raw": None, "prompt": user, "columns": columns}


def prompt_rows(examples: list[Example]) -> list[dict]:
    return [prompt_row(example) for example in examples]


class PromptCollator:
    """Lists, not tensors: the trainer renders and samples from them at each step."""

    def __call__(self, rows: list[dict]) -> dict:
        keys = list(dict.fromkeys(k for row in rows for k in row["columns"]))
        return {"messages": [r["messages"] for r in rows], "raw": [r["raw"] for r in rows],
                "prompts": [r["prompt"] for r in rows],
                "columns": {k: [r["columns"].get(k) for r in rows] for k in keys}}
