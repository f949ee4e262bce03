"""Generate answers from a (LoRA) model for a list of prompts, batched, greedy by default."""

from __future__ import annotations

from contextlib import nullcontext

from workbench.data.encoding import render_chat


def prompt_texts(prompts: list[str], tokenizer, chat: bool, system_prompt: str | None) -> list[str]:
    if not chat:
        return list(prompts)
    texts = []
    for prompt in prompts:
        messages = [{"role": "user", "content": prompt}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        texts.append(render_chat(messages, tokenizer, add_generation_prompt=True))
    return texts


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 64,
             temperature: float = 0.0, chat: bool = True, system_prompt: str | None = None,
             base: bool = False, batch_size: int = 8) -> list[str]:
    """One completion per prompt. base=True disables the LoRA adapter (the untuned model)."""
    if not prompts:
        return []
    texts = prompt_texts(prompts, tokenizer, chat, system_prompt)
    return generate_texts(model, tokenizer, texts, max_new_tokens=max_new_tokens,
                          temperature=temperature, add_special=not chat, base=base,
                          batch_size=batch_size)


def chat_reply(model, tokenizer, messages: list[dict], *, max_new_tokens: int = 128,
               temperature: float = 0.0, base: bool = False) -> str:
    """The assistant's next turn after `messages` ({role, content} dicts)."""
    text = render_chat(messages, tokenizer, add_generation_prompt=True)
    return generate_texts(model, tokenizer, [text], max_new_tokens=max_new_tokens,
                          temperature=temperature, add_special=False, base=base)[0]


def generate_texts(model, tokenizer, texts: list[str], *, max_new_tokens: int,
                   temperature: float, add_special: bool, base: bool = False,
                   batch_size: int = 8) -> list[str]:
    """Continue each fully rendered text; the model is left in the mode it was in."""
    import torch

    was_training = model.training
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends on the right
    model.eval()
    answers = []
    try:
        adapter_off = model.disable_adapter() if base else nullcontext()
        with adapter_off, torch.no_grad():
            for start in range(0, len(texts), batch_size):
                answers += _generate_batch(model, tokenizer, texts[start:start + batch_size],
                                           max_new_tokens, temperature, add_special)
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    return answers


def _generate_batch(model, tokenizer, texts, max_new_tokens, temperature, add_special):
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    batch = tokenizer(texts, return_tensors="pt", padding=True,
                      add_special_tokens=add_special).to(device)
    eos = model.generation_config.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    output = model.generate(**batch, generation_config=config)
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
