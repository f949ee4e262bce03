"""Keep access tokens out of everything the workbench writes.

Run folders, console lines and executed notebooks get shared: pasted into issues,
committed, uploaded with a model. A token can reach them through a library's error
message, a traceback or a config value. `redact` replaces, in any text about to be
written, the values of secret-looking environment variables (HF_TOKEN and anything
named like *TOKEN*, *SECRET*, *API_KEY*, *PASSWORD*) and strings shaped like Hugging
Face, OpenAI or GitHub tokens. Configs refuse such strings outright (`looks_like_token`).
"""

from __future__ import annotations

import os
import re

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"TOKEN|SECRET|API_KEY|APIKEY|PASSWORD|PASSWD", re.IGNORECASE)
TOKEN_SHAPE = re.compile(r"\b(?:hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,}|"
                         r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b")
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") are settings, not secrets


def secret_values() -> list[str]:
    """Values of secret-named environment variables, longest first (read at each call,
    so a token set after import is still caught)."""
    values = {value for name, value in os.environ.items()
              if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, REDACTED)
    return TOKEN_SHAPE.sub(REDACTED, text)


def looks_like_token(value: str) -> bool:
    return bool(TOKEN_SHAPE.search(value)) or any(v in value for v in secret_values())


_installed = False


def redact_log_records() -> None:
    """Redact every log record made from now on in this process.

    Libraries log the values they choke on (transformers warns with a config's
    model_type, hub errors quote URLs). A record factory sees each record of every
    logger before any handler does, so no handler can print a token."""
    global _installed
    if _installed:
        return
    import logging

    make_record = logging.getLogRecordFactory()

    def redacting_record(*args, **kwargs):
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(redacting_record)
    _installed = True
