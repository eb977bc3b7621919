"""The torch scorer batches prompts by length and still returns each answer in its prompt's place."""
from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from quantize.scorer_torch import TorchScorer
from quantize.tiny_model import make_config, train_tokenizer


def test_batched_answers_come_back_in_prompt_order() -> None:
    docs = [f"sentence number {i} about apples and pears." for i in range(50)]
    tokenizer = train_tokenizer(docs, vocab_size=320)
    torch.manual_seed(0)
    model = LlamaForCausalLM(make_config(tokenizer, 64, 128, num_layers=1)).eval()
    prompts = ["sentence number 12 about apples and", "pears", "about apples", "sentence", "number 3 about"]
    one_by_one = [TorchScorer(model, tokenizer, batch_size=1).answers([p], 4)[0] for p in prompts]
    batched = TorchScorer(model, tokenizer, batch_size=2).answers(prompts, 4)
    assert batched == one_by_one
    assert len(set(one_by_one)) > 1          # distinct answers, so a mix-up would show
