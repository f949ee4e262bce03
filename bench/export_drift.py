"""How far each GGUF weight type drifts from the model it was exported from, as llama.cpp
itself computes it: the demo model written as f32, f16, q8_0 (the workbench's writer) and
q5_k_m, q4_k_m, q4_0 (llama.cpp's quantizer), each loaded by llama.cpp and compared with
transformers' logits over the first probe conversation (95 tokens), plus the greedy answers
of both probes, the file size, the time to write it and llama.cpp's decoding speed.

    python bench/export_drift.py          # needs the [verify] extra (llama-cpp-python)
"""

import json
import tempfile
import time
from pathlib import Path

from common import machine

QUANTS = ("f32", "f16", "q8_0", "q5_k_m", "q4_k_m", "q4_0")


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.export.gguf import write_gguf
    from workbench.export.llamacpp import LlamaFile
    from workbench.export.verify import Reference, verify_gguf

    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    reference = Reference.of(model, tokenizer)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for quant in QUANTS:
            path = Path(folder) / f"demo-{quant}.gguf"
            began = time.perf_counter()
            summary = write_gguf(model, tokenizer, path, quant)
            written = time.perf_counter() - began
            verdict = verify_gguf(path, reference)
            with LlamaFile(path) as gguf:
                began = time.perf_counter()
                produced = gguf.greedy(reference.prompt_ids[0], 64)
                decode = time.perf_counter() - began
            rows[quant] = {
                "megabytes": round(summary["bytes"] / 1e6), "write_seconds": round(written, 1),
                "max_logit_difference": round(verdict.drift["max"], 3),
                "mean_logit_difference": round(verdict.drift["mean"], 4),
                "same_top1": round(verdict.drift["top1"], 3),
                "greedy_tokens_equal": [f"{r['equal']}/{r['compared']}"
                                        for r in verdict.generation],
                "stopped": [r["stopped"] for r in verdict.generation],
                "llama_cpp_tokens_per_second_with_prefill": round(len(produced) / decode, 1),
                "tensor_types": summary["tensor_types"], "verified": verdict.ok}
    print(json.dumps({"machine": machine(), "positions": verdict.drift["positions"],
                      **rows}, indent=2))


if __name__ == "__main__":
    main()
