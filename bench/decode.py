"""Where sampling time goes on the CPU: the demo model answers 8 copies of one demo prompt
with 48 new tokens (sampled, the KV cache on), plain, with a fresh LoRA adapter (r16, all
linear layers), with that adapter merged, and with it disabled. Reported: tokens per
second, the prefill of the 8 prompts, and the time of one decoding step for all 8.

    python bench/decode.py
"""

import json
import time

from common import demo_lora, machine

ANSWERS, NEW_TOKENS = 8, 48


def main() -> None:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.backends.loading import load_tokenizer
    from workbench.backends.models import resolve_model
    from workbench.demo import test_cases

    torch.manual_seed(0)
    source = resolve_model("demo")
    tokenizer = load_tokenizer(source, False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    prompt, _ = test_cases(1)[0]
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    encoded = tokenizer([text] * ANSWERS, return_tensors="pt")

    def measure(m) -> dict:
        m.eval()
        with torch.no_grad():
            m.generate(**encoded, max_new_tokens=4, do_sample=True,
                       pad_token_id=tokenizer.pad_token_id)  # warm-up
            began = time.perf_counter()
            m.generate(**encoded, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                       do_sample=True, pad_token_id=tokenizer.pad_token_id)
            seconds = time.perf_counter() - began
            began = time.perf_counter()
            m(**encoded)
            prefill = time.perf_counter() - began
        return {"tokens_per_second": round(ANSWERS * NEW_TOKENS / seconds, 1),
                "prefill_seconds": round(prefill, 2),
                "decode_step_ms": round((seconds - prefill) / (NEW_TOKENS - 1) * 1000)}

    results = {"plain": measure(model)}
    lora = get_peft_model(model, demo_lora())
    results["lora"] = measure(lora)
    lora.merge_adapter()
    results["lora merged"] = measure(lora)
    lora.unmerge_adapter()
    with lora.disable_adapter():
        results["lora disabled"] = measure(lora)
    print(json.dumps({"machine": machine(), "prompt_tokens": encoded["input_ids"].shape[1],
                      **results}, indent=2))


if __name__ == "__main__":
    main()
