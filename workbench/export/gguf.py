"""Write a (merged) model as one GGUF file for llama.cpp and Ollama, with the `gguf` package.

    write_gguf(model, tokenizer, "out/model-q8_0.gguf", quant="q8_0")

Architectures (`ARCHITECTURES`): Llama (the demo model's) and Mistral without a sliding
window (written as GGUF `llama`, as llama.cpp's converter does), Qwen2/Qwen2.5, Qwen3 and
Phi-3, each read back by transformers and by llama.cpp in tests/test_families.py. Others
(Gemma among them) are refused naming the architecture and the alternative. Tokenizers:
byte-level BPE (GPT-2 style: SmolLM, Llama 3, Qwen), written as
`tokenizer.ggml.model = gpt2` with tokens, token types, merges, special ids and the chat
template. SentencePiece tokenizers (Llama 2, Mistral v0.1) are refused for now.

Weights: `f32`; `f16` (norms stay F32, as llama.cpp writes them); `q8_0` (2-D weights in
blocks of 32 int8 values with one F16 scale each, via `gguf.quants`; rows that do not
divide by 32 stay F16). `q5_k_m`, `q4_k_m` and `q4_0` are llama.cpp's own: an F16 file is
written and handed to its quantizer (needs the `[verify]` extra; `llamacpp.py`). For the
`llama` architecture llama.cpp stores the query and key projections with each head's
rotary halves interleaved; `permute_qk` does that and transformers' GGUF reader undoes it.
The file is written under a temporary name and renamed, so a failed export leaves no
half-written file behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from workbench.errors import ExportError

WRITTEN_QUANTS = ("f32", "f16", "q8_0")  # written here, with the `gguf` package
LLAMA_CPP_QUANTS = ("q5_k_m", "q4_k_m", "q4_0")  # written by llama.cpp's quantizer (llamacpp.py)
QUANTS = WRITTEN_QUANTS + LLAMA_CPP_QUANTS
# The types each of llama.cpp's mixes is made of (norms stay F32; the _M mixes and q4_0 keep
# some tensors at Q6_K); anything else in the file is a fallback the user is told about.
QUANTIZER_MAIN_TYPES = {"q5_k_m": {"Q5_K", "Q6_K", "F32"},
                        "q4_k_m": {"Q4_K", "Q5_K", "Q6_K", "F32"},  # fused attn_qkv: Q5_K
                        "q4_0": {"Q4_0", "Q6_K", "F32"}}


@dataclass(frozen=True)
class Architecture:
    """How one transformers model type is written in GGUF."""

    name: str  # general.architecture, as llama.cpp names it
    tensor_map: str  # the gguf.MODEL_ARCH whose tensor names the weights take
    interleaved_rope: bool  # llama.cpp rotates pairs (Llama): q and k rows are permuted


# transformers model_type -> how it is written (rope of the others is NEOX: HF's layout)
ARCHITECTURES = {
    "llama": Architecture("llama", "LLAMA", interleaved_rope=True),
    "mistral": Architecture("llama", "LLAMA", interleaved_rope=True),
    "qwen2": Architecture("qwen2", "QWEN2", interleaved_rope=False),  # q/k/v biases always
    "qwen3": Architecture("qwen3", "QWEN3", interleaved_rope=False),
    "phi3": Architecture("phi3", "PHI3", interleaved_rope=False),
}

# llama.cpp picks its pre-tokenizer (how text is split before BPE) by this name. It names
# a tokenizer by the hash of the ids it gives for one probe text; a few common ones:
PROBE_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) "
    "\U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 \U0001f999\U0001f999 3 33 333 3333 33333 333333 "
    "3333333 33333333 3.3 3..3 3...3 \u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1"
    "\u179f\u17a2\u17b6\u1785\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e "
    "------======= \u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441"
    "\u043a\u0438 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
    "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
KNOWN_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
}


def write_gguf(model, tokenizer, path: str | Path, quant: str = "f16", *,
               name: str | None = None, end_of_turn: int | None = None) -> dict:
    """Write `model` (a plain transformers model, adapters merged) and its tokenizer.

    `end_of_turn` is the id that ends an assistant turn when it is not the tokenizer's EOS
    (written as `tokenizer.ggml.eot_token_id`). Returns a summary: path, quant, bytes,
    the tensor types written, and notes (such as an unrecognised pre-tokenizer)."""
    import gguf

    if quant not in QUANTS:
        raise ExportError(f"GGUF quantization {quant!r} is not offered; choose one of "
                          f"{', '.join(QUANTS)}")
    config = model.config
    arch = check_architecture(config).name
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.writing")
    if quant in LLAMA_CPP_QUANTS:
        return _write_with_quantizer(model, tokenizer, path, scratch, quant, name, end_of_turn)
    notes: list[str] = []
    writer = gguf.GGUFWriter(str(scratch), arch)
    try:
        add_model_metadata(writer, config, quant, name or path.stem)
        notes += add_tokenizer_metadata(writer, tokenizer, config.vocab_size, end_of_turn)
        types = add_tensors(writer, model, quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(scratch, path)
    except BaseException:
        writer.close()
        scratch.unlink(missing_ok=True)
        raise
    return {"path": str(path), "quant": quant, "bytes": path.stat().st_size,
            "tensor_types": types, "notes": notes}


def _write_with_quantizer(model, tokenizer, path: Path, scratch: Path, quant: str, name,
                          end_of_turn) -> dict:
    """An F16 file first, then llama.cpp's quantizer from it (as `llama-quantize` is run)."""
    from workbench.export.llamacpp import quantize, require

    require(f"the {quant} quantization")  # before the F16 write, not after it
    source = path.with_name(f".{path.name}.f16")
    try:
        summary = write_gguf(model, tokenizer, source, "f16", name=name or path.stem,
                             end_of_turn=end_of_turn)
        quantize(source, scratch, quant)
        os.replace(scratch, path)
    finally:
        source.unlink(missing_ok=True)
        scratch.unlink(missing_ok=True)
    types: dict[str, int] = {}
    for kind in read_tensor_types(path).values():
        types[kind] = types.get(kind, 0) + 1
    notes = list(summary["notes"])
    fallback = {k: n for k, n in types.items() if k not in QUANTIZER_MAIN_TYPES[quant]}
    if fallback:
        notes.append(f"llama.cpp's quantizer wrote {sum(fallback.values())} of "
                     f"{sum(types.values())} tensors as "
                     f"{', '.join(f'{k} ({n})' for k, n in sorted(fallback.items()))}: "
                     f"{quant} blocks need rows that divide by 256 (32 for q4_0), so it "
                     "falls back to the nearest type that fits; the file is larger than a "
                     f"pure {quant} one")
    return {**summary, "path": str(path), "quant": quant, "bytes": path.stat().st_size,
            "tensor_types": types, "notes": notes}


def check_architecture(config) -> Architecture:
    """How this config is written, or ExportError naming what stands in the way."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ExportError(f"GGUF export does not support {model_type!r} models yet; it writes "
                          f"{', '.join(ARCHITECTURES)} models. Export the merged Hugging Face "
                          "folder (--format hf) and convert it with llama.cpp's "
                          "convert_hf_to_gguf.py (in github.com/ggml-org/llama.cpp; the pip "
                          "package does not install it)")
    arch = ARCHITECTURES[model_type]
    rope = rope_parameters(config)
    if rope.get("rope_type", "default") != "default":
        raise ExportError(f"GGUF export does not write rope scaling ({rope.get('rope_type')!r}) "
                          "yet; export --format hf and convert it with llama.cpp")
    if float(rope.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ExportError(f"GGUF export does not write partial rotary embeddings "
                          f"(partial_rotary_factor {rope['partial_rotary_factor']}) yet; export "
                          "--format hf and convert it with llama.cpp")
    # (Qwen2's q/k/v biases are not a config option: they are part of the architecture)
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ExportError(f"GGUF export of {model_type} models with attention or MLP biases is "
                          "not supported; export --format hf instead")
    window = getattr(config, "sliding_window", None)
    if model_type == "mistral" and window:
        raise ExportError(f"this Mistral model uses a sliding window of {window} tokens, "
                          "which the GGUF llama architecture cannot say; export --format hf "
                          "instead")
    if model_type in ("qwen2", "qwen3") and getattr(config, "use_sliding_window", False):
        raise ExportError(f"this {model_type} model uses sliding-window attention, which "
                          "GGUF export does not write; export --format hf instead")
    return arch


def rope_parameters(config) -> dict:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    params = dict(params or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    return params


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_model_metadata(writer, config, quant: str, name: str) -> None:
    import gguf

    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant]
    writer.add_type("model")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None)
                             or config.num_attention_heads)
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(float(rope_parameters(config)["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    if config.model_type == "phi3":  # as llama.cpp's converter writes Phi-3
        writer.add_rope_scaling_orig_ctx_len(getattr(config, "original_max_position_embeddings",
                                                     None) or config.max_position_embeddings)
        writer.add_sliding_window(getattr(config, "sliding_window", None) or 0)
    writer.add_file_type(file_type)
    if quant == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


# -- tokenizer -------------------------------------------------------------------------------

def add_tokenizer_metadata(writer, tokenizer, vocab_size: int,
                           end_of_turn: int | None = None) -> list[str]:
    """Tokens, types, merges, special ids and chat template; returns notes for the user."""
    vocab = tokenizer_vocabulary(tokenizer, vocab_size)
    pre, notes = pre_tokenizer_name(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for token_id, add in ((tokenizer.bos_token_id, writer.add_bos_token_id),
                          (tokenizer.eos_token_id, writer.add_eos_token_id),
                          (tokenizer.unk_token_id, writer.add_unk_token_id),
                          (tokenizer.pad_token_id, writer.add_pad_token_id)):
        if token_id is not None:
            add(token_id)
    if end_of_turn is not None and end_of_turn != tokenizer.eos_token_id:
        writer.add_eot_token_id(end_of_turn)
    adds_bos, adds_eos = special_tokens_added(tokenizer)
    writer.add_add_bos_token(adds_bos)
    writer.add_add_eos_token(adds_eos)
    writer.add_add_space_prefix(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)
    else:
        notes.append("the tokenizer has no chat template, so the GGUF file carries none")
    return notes


def tokenizer_vocabulary(tokenizer, vocab_size: int) -> dict:
    """Tokens by id (padded to the model's vocabulary with unused [PADn] tokens), their
    llama.cpp types, and the BPE merges as "left right" strings."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or not _mentions(spec.get("pre_tokenizer"), "ByteLevel"):
        raise ExportError(f"GGUF export writes byte-level BPE tokenizers (GPT-2 style, as in "
                          f"SmolLM, Llama 3 and Qwen); this tokenizer is {model.get('type')} with "
                          f"pre-tokenizer {(spec.get('pre_tokenizer') or {}).get('type')}. Export "
                          "--format hf and convert it with llama.cpp")
    ids = tokenizer.get_vocab()
    if max(ids.values()) >= vocab_size:
        raise ExportError(f"the tokenizer has ids up to {max(ids.values())} but the model's "
                          f"vocabulary has {vocab_size} rows; resize the embeddings first")
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    for token, index in ids.items():
        tokens[index], types[index] = token, gguf.TokenType.NORMAL
    for index, added in tokenizer.added_tokens_decoder.items():
        types[index] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": [int(t) for t in types], "merges": merges}


def _mentions(node, kind: str) -> bool:
    if isinstance(node, dict):
        return node.get("type") == kind or any(_mentions(v, kind) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, kind) for v in node)
    return False


def pre_tokenizer_name(tokenizer) -> tuple[str, list[str]]:
    """llama.cpp's name for how this tokenizer splits text, found the way llama.cpp's
    converter finds it: by hashing the ids of its probe text."""
    digest = sha256(str(tokenizer.encode(PROBE_TEXT)).encode()).hexdigest()
    if digest in KNOWN_PRE_TOKENIZERS:
        return KNOWN_PRE_TOKENIZERS[digest], []
    named = _named_by_splitting(tokenizer)
    if named:
        return named, []
    return "default", [f"llama.cpp may split text differently from this tokenizer: its "
                       f"pre-tokenizer is not one workbench recognises (hash {digest[:12]}), so "
                       "the GGUF says `default`. transformers reads the file correctly; check "
                       "the answers in llama.cpp or Ollama before you rely on them"]


# Splitting regexes llama.cpp reproduces under a name, whatever the vocabulary (the hash
# above names whole tokenizers). Qwen2's is what transformers' Qwen2Tokenizer splits with.
SPLIT_PATTERNS = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "qwen2",
}


def _named_by_splitting(tokenizer) -> str | None:
    """llama.cpp's name for how this tokenizer splits text, read from its pre-tokenizer:
    GPT-2's regex alone (a plain ByteLevel) is `gpt-2`; a known Split regex followed by a
    regex-free ByteLevel is that regex's name; anything else None."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    pre = spec.get("pre_tokenizer") or {}
    # Qwen's tokenizers normalize to NFC, which llama.cpp does not: the same for text typed
    # or pasted as almost all text is (already NFC), and the round trip checks the probes.
    if spec.get("normalizer") not in (None, {"type": "NFC"}):
        return None
    if pre.get("type") == "ByteLevel":
        plain = pre.get("use_regex", True) and not pre.get("add_prefix_space", False)
        return "gpt-2" if plain else None
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == \
            "ByteLevel" and not steps[1].get("use_regex", True) and \
            steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"):
        return SPLIT_PATTERNS.get((steps[0].get("pattern") or {}).get("Regex"))
    return None


def special_tokens_added(tokenizer) -> tuple[bool, bool]:
    """Whether encoding plain text adds BOS / EOS (llama.cpp must do the same)."""
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    adds_bos = bos is not None and len(full) > len(plain) and full[0] == bos
    adds_eos = eos is not None and len(full) > len(plain) and full[-1] == eos
    return adds_bos, adds_eos


# -- tensors ---------------------------------------------------------------------------------

def add_tensors(writer, model, quant: str) -> dict[str, int]:
    """Add every weight under its GGUF name; returns how many tensors of each type."""
    import gguf

    config = model.config
    arch = check_architecture(config)
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.tensor_map),
                                     config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    tied = getattr(config, "tie_word_embeddings", False)
    counts: dict[str, int] = {}
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = names.get_name(stem)
        if gguf_name is None or suffix not in ("weight", "bias"):
            raise ExportError(f"{hf_name} has no place in a GGUF {arch.name} file; this model "
                              "has layers the exporter does not know, so export --format hf "
                              "instead")
        data = tensor.detach().to("cpu").float().numpy()
        if arch.interleaved_rope and gguf_name.endswith("attn_q"):
            data = permute_qk(data, heads)
        elif arch.interleaved_rope and gguf_name.endswith("attn_k"):
            data = permute_qk(data, kv_heads)
        data, qtype = encode(data, quant)
        writer.add_tensor(f"{gguf_name}.{suffix}", data, raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    return counts


def permute_qk(weights, heads: int):
    """Reorder each head's rows from transformers' rotary layout (first half, second half)
    to llama.cpp's (pairs interleaved). transformers' GGUF reader applies the inverse."""
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def encode(data, quant: str):
    """The array to write and its GGML type. Vectors (norms) always stay F32."""
    import gguf
    import numpy as np

    kind = gguf.GGMLQuantizationType
    if quant == "f32" or data.ndim < 2:
        return np.ascontiguousarray(data, dtype=np.float32), kind.F32
    if quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[kind.Q8_0][0] == 0:
        return gguf.quants.quantize(data, kind.Q8_0), kind.Q8_0
    return np.ascontiguousarray(data, dtype=np.float16), kind.F16


# -- reading back ----------------------------------------------------------------------------
# gguf's GGUFReader builds a numpy view per array element: 10-30 s for a 49k-token vocabulary.
# The header is simple enough to read directly (GGUF v3, little-endian), in well under a second.

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


def read_gguf_header(path: str | Path) -> tuple[dict, dict[str, str]]:
    """(metadata, {tensor name: GGML type name}) of a GGUF file, without its tensor data."""
    import struct

    import gguf

    with open(path, "rb", buffering=1 << 20) as handle:
        def take(fmt):
            return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]

        def text():
            return handle.read(take("<Q")).decode("utf-8", errors="replace")

        def value(kind):
            if kind == STRING:
                return text()
            if kind == ARRAY:
                item, count = take("<I"), take("<Q")
                return [value(item) for _ in range(count)]
            return take(_SCALARS[kind])

        if handle.read(4) != b"GGUF":
            raise ExportError(f"{path} is not a GGUF file (it does not start with GGUF)")
        take("<I")  # version
        tensor_count, kv_count = take("<Q"), take("<Q")
        metadata = {}
        for _ in range(kv_count):
            key = text()
            metadata[key] = value(take("<I"))
        tensors = {}
        for _ in range(tensor_count):
            name, dims = text(), take("<I")
            handle.read(8 * dims)
            tensors[name] = gguf.GGMLQuantizationType(take("<I")).name
            take("<Q")  # data offset
    return metadata, tensors


def read_metadata(path: str | Path) -> dict:
    """The key/value metadata of a GGUF file."""
    return read_gguf_header(path)[0]


def read_tensor_types(path: str | Path) -> dict[str, str]:
    return read_gguf_header(path)[1]
