"""Scoring a model in this process with torch (the CPU path: parent, or dequantized build)."""
from __future__ import annotations

import torch


class TorchScorer:
    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def window_nll(self, window: list[int]) -> float:
        """Sum of -log p(token | earlier tokens of the window) over window[1:]."""
        ids = torch.tensor(window, dtype=torch.long)
        with torch.inference_mode():
            logits = self.model(input_ids=ids[None, :-1]).logits[0]
            return torch.nn.functional.cross_entropy(logits.float(), ids[1:], reduction="sum").item()

    def answers(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy answers, generated in left-padded batches (one generate call per batch is far faster);
        prompts of similar length go together, so little of each batch is padding."""
        tok, out_texts = self.tokenizer, [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True)
                    out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                              pad_token_id=tok.pad_token_id)
                    texts = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
                    for i, text in zip(idx, texts):
                        out_texts[i] = text
        finally:
            tok.padding_side = side
        return out_texts
