"""A tiny Llama over a 400-token byte-level BPE tokenizer trained on the demo data (ChatML
and the demo's special tokens). transformers reads a GGUF vocabulary one element at a time,
so tests that read GGUF files back use this model: seconds instead of half a minute."""

import json

from conftest import ORDERS


def small_tokenizer(end_of_turn: str = "<|im_end|>"):
    """`end_of_turn` renames ChatML's `<|im_end|>` (to one llama.cpp does not recognise by
    its text, say)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from workbench.data.encoding import CHATML_TEMPLATE

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    texts = [m["content"] for line in ORDERS.read_text(encoding="utf-8").splitlines()
             for m in json.loads(line)["messages"]]
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", end_of_turn],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                        eos_token=end_of_turn, pad_token=end_of_turn,
                                        unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE.replace("<|im_end|>", end_of_turn)
    return tokenizer


def small_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))


def small_model_dir(folder) -> str:
    tokenizer = small_tokenizer()
    small_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
