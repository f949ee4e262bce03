"""The one place that talks to llama.cpp, through the optional `llama-cpp-python` package.

    quantize("model-f32.gguf", "model-q4_k_m.gguf", "q4_k_m")     # llama.cpp's own quantizer
    with LlamaFile("model-q4_k_m.gguf") as gguf:
        gguf.tokenize("<|im_start|>user\\nHi<|im_end|>\\n")
        gguf.render_chat(messages)      # llama.cpp's built-in template (what runs without --jinja)
        gguf.greedy(prompt_ids, 32)     # its own forward pass, argmax each step, KV cache
        gguf.logits(prompt_ids)         # one row per position

`pip install -e ".[verify]"` (part of `[dev]`) compiles llama.cpp from source when no
wheel fits the machine: about 11 minutes on 2 cores, once; pip keeps the built wheel.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import ExportError

INSTALL = ('pip install -e ".[verify]"  (or pip install llama-cpp-python==0.3.36; it compiles '
           "llama.cpp from source where no wheel fits: 4 to 11 minutes on 2 cores, once)")

# workbench quant name -> the llama_ftype name llama.cpp's quantizer takes
QUANTIZER_TYPES = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
                   "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M"}


def available() -> bool:
    try:
        require("")
    except ExportError:
        return False
    return True


def require(why: str):
    """The `llama_cpp` module, quiet; ExportError with the install command when it is absent."""
    try:
        import llama_cpp
        from llama_cpp import _logger
    except ImportError as exc:  # also a build whose shared library fails to load
        raise ExportError(f"{why} needs llama.cpp, which is not installed here ({exc}). "
                          f"Install it with: {INSTALL}") from None
    _logger.set_verbose(False)  # llama.cpp logs every tensor it loads to stderr otherwise
    return llama_cpp


def quantize(source: str | Path, target: str | Path, quant: str) -> None:
    """Quantize an F32/F16 GGUF file with llama.cpp's quantizer (as `llama-quantize` does).
    Rows whose length does not divide by the block size get llama.cpp's fallback type."""
    llama_cpp = require(f"the {quant} quantization")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[quant])
    params.nthread = os.cpu_count() or 1
    captured: list[str] = []
    with _captured_stderr(captured):
        failed = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(),
                                                ctypes.byref(params))
    if failed:
        tail = "\n".join(captured[-5:])
        raise ExportError(f"llama.cpp could not quantize {source} to {quant} (code {failed}); "
                          f"export --quant q8_0 or f16 instead. Its last words:\n{tail}")


@contextmanager
def _captured_stderr(lines: list[str]):
    """The quantizer writes a line per tensor that falls back to another type straight to
    file descriptor 2 (180 lines for the demo model); the export sums them up in one note,
    and `lines` gets them. Anything another thread writes to stderr meanwhile (a second or
    two) lands there too."""
    import sys
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode("utf-8", errors="replace").splitlines()


class LlamaFile:
    """A GGUF file loaded by llama.cpp on the CPU, for checking it against the merged model."""

    def __init__(self, path: str | Path, context: int = 1024):
        from workbench.export.gguf import read_metadata

        llama_cpp = require("checking an export with llama.cpp (--verify)")
        self._lib = llama_cpp
        metadata = read_metadata(path)
        trained = metadata.get(f"{metadata.get('general.architecture')}.context_length", context)
        context = min(context, int(trained))  # more than it was trained for makes a warning
        try:
            with _plain_cpu_buffers(llama_cpp):
                self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=context,
                                           n_batch=context, n_threads=os.cpu_count() or 1,
                                           logits_all=True, verbose=False)
        except ValueError as exc:  # llama-cpp-python's way of saying the load failed
            raise ExportError(f"llama.cpp cannot load {path}: {exc}. The file is not usable "
                              "by llama.cpp or Ollama; export --format hf and convert it with "
                              "llama.cpp's convert_hf_to_gguf.py instead") from None
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.metadata = dict(self.llm.metadata)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.llm.close()

    @property
    def adds_bos(self) -> bool:
        return self.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"

    def tokenize(self, text: str) -> list[int]:
        """Ids as llama.cpp gives them for a rendered prompt: special tokens parsed, BOS
        prepended when the file says so (what llama-server and Ollama do)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=self.adds_bos, special=True)

    def render_chat(self, messages) -> str | None:
        """The prompt llama.cpp's built-in chat template renders from the file's
        `tokenizer.chat_template` (it recognises the common formats by their markers), or
        None when it does not recognise the template."""
        template = self.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        keep = [m["content"].encode("utf-8") for m in messages]  # alive during the call
        chat = (self._lib.llama_chat_message * len(messages))(*[
            self._lib.llama_chat_message(m["role"].encode(), text)
            for m, text in zip(messages, keep)])
        size = 4096
        while True:
            buffer = ctypes.create_string_buffer(size)
            written = self._lib.llama_chat_apply_template(template.encode("utf-8"), chat,
                                                          len(messages), True, buffer, size)
            if written < 0:
                return None
            if written <= size:
                return buffer.raw[:written].decode("utf-8")
            size = written

    def is_end_of_generation(self, token_id: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token_id))

    def logits(self, ids: list[int]):
        """llama.cpp's logits for every position of `ids` (float32 numpy, positions x vocab)."""
        self.llm.reset()
        self.llm.eval(ids)
        return self.llm.scores[:len(ids)].copy()

    def greedy(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """The argmax token at each step (the KV cache keeps earlier positions), up to and
        including the first token llama.cpp treats as the end of generation."""
        self.llm.reset()
        self.llm.eval(ids)
        produced: list[int] = []
        room = self.llm.n_ctx() - len(ids)
        while len(produced) < min(max_new_tokens, room):
            token = int(self.llm.scores[self.llm.n_tokens - 1].argmax())
            produced.append(token)
            if self.is_end_of_generation(token):
                break
            self.llm.eval([token])
        return produced


@contextmanager
def _plain_cpu_buffers(llama_cpp):
    """Load weights without llama.cpp's "extra buffer types", which repack Q8_0/Q4_0 weights
    for AMX or other CPU-specific kernels. On a CPU with AMX a `-march=native` build uses
    them, and decoding a quantized file then crashed the process here (a segfault, measured
    2026-12-02); the plain kernels compute the same quantized products. `Llama` takes no
    such option, so its default parameters are amended while it loads."""
    bindings = llama_cpp.llama_cpp  # the module `Llama` calls them through
    default = bindings.llama_model_default_params

    def without_extra_buffers():
        params = default()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        bindings.llama_model_default_params = default
