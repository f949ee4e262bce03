"""The chat template must survive the trip to llama.cpp and Ollama.

A model answers well only when it is prompted exactly as it was trained. An export carries
the template three more times: in the saved tokenizer (`chat_template.jinja`), in the GGUF
metadata (`tokenizer.chat_template`) and, restated in Go-template syntax, in the Ollama
`Modelfile`. `round_trip` renders the same conversations through each and compares token
ids; `TurnFormat` is the template taken apart into what wraps each turn, which is what the
Modelfile restates and where the stop token comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.errors import ExportError

# Conversations every export is checked with: system and no system (some templates add a
# default system prompt), several turns, digits, JSON braces, newlines, accents, an emoji.
PROBES = (
    [{"role": "system", "content": "You answer in one short line."},
     {"role": "user", "content": "Two lattes to Lyon for Ana, please. Order #1234!"},
     {"role": "assistant", "content": '{"name": "Ana", "city": "Lyon", "item": "latte", '
                                      '"quantity": 2}'},
     {"role": "user", "content": "And a crème brûlée \U0001f370\nfor Zoë too?"}],
    [{"role": "user", "content": "Hello there. What is 12 + 30?"}],
)
# Sentinels for taking a template apart: plain words no template rewrites, none inside another.
SENTINELS = {"system": "SYSTEMMARKER", "user": "QUESTIONMARKER",
             "assistant": "ANSWERMARKER", "user2": "FOLLOWUPMARKER"}


def render(tokenizer, messages, generation_prompt: bool = True, template: str | None = None) -> str:
    kwargs = {"chat_template": template} if template else {}
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=generation_prompt, **kwargs)
    return text if isinstance(text, str) else str(text)


def token_ids(tokenizer, text: str, add_bos: bool = False) -> list[int]:
    """Ids as training saw them (no special tokens added: the template places them),
    with the BOS a GGUF runtime prepends when the file says add_bos_token."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return [tokenizer.bos_token_id] + ids if add_bos else ids


@dataclass(frozen=True)
class TurnFormat:
    """A chat template as text around each turn:

        preamble + prefix[role] + content + suffix[role] (for each message) + generation

    with `default_system` inserted first when the conversation has no system message."""

    preamble: str
    prefix: dict
    suffix: dict
    generation: str
    default_system: str | None
    supports_system: bool
    end_of_turn: str  # the text that ends an assistant turn (e.g. <|im_end|>)

    def render(self, messages) -> str:
        messages = list(messages)
        if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
            messages.insert(0, {"role": "system", "content": self.default_system})
        body = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]]
                       for m in messages)
        return self.preamble + body + self.generation


def turn_format(tokenizer) -> TurnFormat:
    """Take the tokenizer's chat template apart; ExportError when it is more than a wrapper
    around each turn (then no Modelfile template can restate it)."""
    s = SENTINELS
    try:
        supports_system = True
        render(tokenizer, [{"role": "system", "content": s["system"]},
                           {"role": "user", "content": s["user"]}])
    except Exception:  # templates raise anything for a role they refuse
        supports_system = False
    try:
        fmt = _split(tokenizer, supports_system)
    except (ValueError, KeyError, IndexError) as exc:
        raise ExportError(f"the chat template does more than wrap each turn in fixed text "
                          f"({exc}), so it cannot be restated as an Ollama template") from None
    for probe in PROBES:
        messages = [m for m in probe if supports_system or m["role"] != "system"]
        if fmt.render(messages) != render(tokenizer, messages):
            raise ExportError("the chat template does more than wrap each turn in fixed text "
                              "(a conversation renders differently when its turns are "
                              "wrapped one by one), so it cannot be restated as an Ollama "
                              "template")
    return fmt


def _split(tokenizer, supports_system: bool) -> TurnFormat:
    s = SENTINELS
    user, assistant, user2 = ({"role": "user", "content": s["user"]},
                              {"role": "assistant", "content": s["assistant"]},
                              {"role": "user", "content": s["user2"]})
    dialog = render(tokenizer, [user, assistant, user2], generation_prompt=False)
    with_prompt = render(tokenizer, [user, assistant, user2])
    closed = render(tokenizer, [user, assistant], generation_prompt=False)
    suffix_user = _after(dialog, s["user2"])
    generation = _after(with_prompt, s["user2"])[len(suffix_user):]
    if not _after(with_prompt, s["user2"]).startswith(suffix_user):
        raise ValueError("the generation prompt changes the last user turn")
    suffix_assistant = _after(closed, s["assistant"])
    prefix_assistant = _between(dialog, s["user"], s["assistant"])[len(suffix_user):]
    prefix_user = _between(dialog, s["assistant"], s["user2"])[len(suffix_assistant):]
    lone = _before(render(tokenizer, [user]), s["user"])
    prefix = {"user": prefix_user, "assistant": prefix_assistant}
    suffix = {"user": suffix_user, "assistant": suffix_assistant}
    preamble, default_system = lone[:len(lone) - len(prefix_user)], None
    if not lone.endswith(prefix_user):
        raise ValueError("the first user turn is wrapped differently from later ones")
    if supports_system:
        system = {"role": "system", "content": s["system"]}
        opened = render(tokenizer, [system, user])
        head = _before(opened, s["system"])
        suffix["system"] = _between(opened, s["system"], s["user"])[:-len(prefix_user) or None]
        if not _between(opened, s["system"], s["user"]).endswith(prefix_user):
            raise ValueError("a user turn after a system turn is wrapped differently")
        closing = suffix["system"] + prefix_user
        if (lone.startswith(head) and lone.endswith(closing)
                and len(lone) > len(head) + len(closing)):
            # a default system prompt: the whole head opens the system turn
            default_system = lone[len(head):len(lone) - len(closing)]
            preamble, prefix["system"] = "", head
        else:
            if not head.startswith(preamble):
                raise ValueError("a system turn changes what comes before it")
            prefix["system"] = head[len(preamble):]
    end = suffix_assistant.strip() or suffix_assistant
    return TurnFormat(preamble, prefix, suffix, generation, default_system, supports_system,
                      end_of_turn=_first_piece(end))


def _first_piece(text: str) -> str:
    """`<|im_end|>` from `<|im_end|>\\n`; `</s>` from `</s>`; the text itself otherwise."""
    if text.startswith("<") and ">" in text:
        return text[:text.index(">") + 1]
    return text.split()[0] if text.split() else text


def _after(text: str, marker: str) -> str:
    return text[_index(text, marker) + len(marker):]


def _before(text: str, marker: str) -> str:
    return text[:_index(text, marker)]


def _between(text: str, start: str, end: str) -> str:
    return _before(_after(text, start), end)


def _index(text: str, marker: str) -> int:
    if text.count(marker) != 1:
        raise ValueError(f"a message appears {text.count(marker)} times in the rendered text")
    return text.index(marker)


# -- the round trip -------------------------------------------------------------------------

@dataclass
class RoundTrip:
    """Token ids of each probe conversation per stage, and what differs."""

    stages: dict = field(default_factory=dict)  # stage -> list of id lists (one per probe)
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def round_trip(training, *, hf_tokenizer=None, gguf_path=None, turns: TurnFormat | None = None,
               stops: list[str] | None = None) -> RoundTrip:
    """Render PROBES through the training tokenizer and each export stage given, and
    compare ids: the saved HF tokenizer, the GGUF file (its template, vocabulary, merges and
    add_bos_token), the Ollama template (`turns`, tokenized as the GGUF would). `stops` are
    the Modelfile's stop strings: the end-of-turn token must be among them."""
    result = RoundTrip()
    probes = [p for p in PROBES if renders(training, p)]
    result.stages["training"] = [token_ids(training, render(training, p)) for p in probes]
    gguf_tokenizer = add_bos = None
    if hf_tokenizer is not None:
        result.stages["hf"] = [token_ids(hf_tokenizer, render(hf_tokenizer, p)) for p in probes]
    if gguf_path is not None:
        gguf_tokenizer, template, add_bos, gguf_stops = gguf_chat(gguf_path, training)
        if template is None:
            result.problems.append("gguf: the file carries no tokenizer.chat_template")
        else:
            result.stages["gguf"] = [token_ids(gguf_tokenizer, render(gguf_tokenizer, p,
                                                                       template=template), add_bos)
                                     for p in probes]
        _check_stop(result, "gguf", training, gguf_stops)
    if turns is not None:
        speaker = gguf_tokenizer or training
        result.stages["ollama"] = [token_ids(speaker, turns.render(p), bool(add_bos))
                                   for p in probes]
        _check_stop(result, "ollama", training, stops or [])
    for stage, rows in result.stages.items():
        for probe, expected, got in zip(probes, result.stages["training"], rows):
            if got != expected:
                result.problems.append(_difference(stage, probe, expected, got, training))
    return result


def renders(tokenizer, messages) -> bool:
    try:
        render(tokenizer, messages)
        return True
    except Exception:  # e.g. a template that refuses system turns
        return False


def _check_stop(result: RoundTrip, stage: str, training, stops) -> None:
    """The token that ends an assistant turn in training must stop generation there."""
    end = ending(training)[0]
    if end not in stops:
        result.problems.append(f"{stage}: generation stops at {sorted(set(stops))}, but the "
                               f"model ends its turns with {end!r}, so answers would run on")


def ending(tokenizer) -> tuple[str, str | None]:
    """The text that ends the model's turns and the template's default system prompt; EOS
    and None when the template cannot be taken apart."""
    try:
        turns = turn_format(tokenizer)
    except ExportError:
        return tokenizer.eos_token, None
    return turns.end_of_turn, turns.default_system


def first_difference(expected: list, got: list) -> int:
    """The index of the first id that differs (the shorter length when one is a prefix)."""
    return next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b),
                min(len(expected), len(got)))


def _difference(stage, probe, expected, got, tokenizer) -> str:
    at = first_difference(expected, got)
    piece = lambda ids: repr(tokenizer.decode(ids[at:at + 3])) if at < len(ids) else "the end"
    return (f"{stage}: a {len(probe)}-message conversation gives different token ids than in "
            f"training from token {at} on ({piece(got)} instead of {piece(expected)})")


def gguf_chat(path, like) -> tuple:
    """What a GGUF runtime would use: a tokenizer built from the file's vocabulary, merges
    and token types (splitting text as `like` does, which `tokenizer.ggml.pre` names), its
    chat template, whether it prepends BOS, and its end-of-generation tokens."""
    import json

    import gguf
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from workbench.export.gguf import read_metadata

    metadata = read_metadata(path)
    value = metadata.get
    tokens, types = value("tokenizer.ggml.tokens"), value("tokenizer.ggml.token_type")
    spec = json.loads(like.backend_tokenizer.to_str())
    spec["model"]["vocab"] = {token: index for index, token in enumerate(tokens)}
    spec["model"]["merges"] = [m.split(" ", 1) for m in value("tokenizer.ggml.merges") or []]
    spec["added_tokens"] = [
        {"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == gguf.TokenType.CONTROL}
        for i in range(len(tokens)) if types[i] in (gguf.TokenType.CONTROL,
                                                    gguf.TokenType.USER_DEFINED)]
    named = lambda key: tokens[value(key)] if value(key) is not None else None
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token=named(
            "tokenizer.ggml.bos_token_id"), eos_token=named("tokenizer.ggml.eos_token_id"),
        unk_token=named("tokenizer.ggml.unknown_token_id"),
        pad_token=named("tokenizer.ggml.padding_token_id"))
    stops = [t for t in (named("tokenizer.ggml.eos_token_id"),
                         named("tokenizer.ggml.eot_token_id")) if t]
    return (tokenizer, value("tokenizer.chat_template"),
            bool(value("tokenizer.ggml.add_bos_token", False)), stops)
