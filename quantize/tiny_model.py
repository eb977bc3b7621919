"""A tiny Llama of our own: nothing can be downloaded, so tests and the demo build one.

A byte-level BPE tokenizer is trained on the local corpus (quantize/data/), then a
2-layer Llama (hidden 256, intermediate 512: both divisible by AWQ's group 128) is
trained for a few hundred steps on CPU so that perplexity and accuracy mean something.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from quantize.data_files import training_docs

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]
# Renders a conversation in the "Q: ...\nA: ..." form the corpus teaches; vLLM's
# /v1/chat/completions refuses a model without a chat template.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}A: {{ m['content'] }}\n"
    "{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}A:{% endif %}"
)
SEQ_LEN = 128
BATCH = 16


def train_tokenizer(docs: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    if vocab_size % 64:
        raise ValueError(f"vocab_size must be a multiple of 64, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   model_max_length=512)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int, intermediate_size: int,
                num_layers: int) -> LlamaConfig:
    # Pad the embedding to a multiple of 64: the small corpus may yield fewer merges than asked.
    return LlamaConfig(
        vocab_size=-(-len(tokenizer) // 64) * 64, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=hidden_size // 64, num_key_value_heads=hidden_size // 64,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, rms_norm_eps=1e-5,
    )


def token_stream(tokenizer: PreTrainedTokenizerFast, docs: list[str]) -> torch.Tensor:
    """All documents as one stream, each framed by <s> ... </s> so the model learns to stop."""
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=True)["input_ids"]:
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def train(model: LlamaForCausalLM, stream: torch.Tensor, steps: int, seed: int, lr: float = 3e-3) -> float:
    """Plain AdamW on random windows with warmup + cosine decay; returns the last loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        starts = torch.randint(0, len(stream) - SEQ_LEN - 1, (BATCH,), generator=gen)
        batch = torch.stack([stream[s:s + SEQ_LEN] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if step % 50 == 0 or step == steps - 1:
            log.info("tiny model training", extra={"step": step, "loss": round(loss_value, 4)})
    model.eval()
    return loss_value


def build_tiny_llama(out_dir: Path, *, train_steps: int = 200, init_from: Path | None = None, seed: int = 0,
                     corpus: list[str] | None = None, vocab_size: int = 2048, hidden_size: int = 256,
                     intermediate_size: int = 512, num_layers: int = 2) -> Path:
    """Build (or continue training, with init_from) a tiny Llama HF folder at out_dir."""
    if train_steps < 0:
        raise ValueError(f"train_steps must be >= 0, got {train_steps}")
    out_dir = Path(out_dir)
    docs = corpus if corpus is not None else training_docs()
    if not docs:
        raise ValueError("the training corpus is empty")
    torch.manual_seed(seed)
    started = time.monotonic()
    if init_from is not None:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(init_from))
        model = LlamaForCausalLM.from_pretrained(str(init_from), dtype=torch.float32)
    else:
        tokenizer = train_tokenizer(docs, vocab_size)
        model = LlamaForCausalLM(make_config(tokenizer, hidden_size, intermediate_size, num_layers))
    loss = train(model, token_stream(tokenizer, docs), train_steps, seed) if train_steps else float("nan")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    meta = {"train_steps": train_steps, "seed": seed, "final_loss": loss,
            "init_from": str(init_from) if init_from else None, "seconds": round(time.monotonic() - started, 2)}
    (out_dir / "relctl_tiny.json").write_text(json.dumps(meta, indent=2))
    log.info("tiny model built", extra={"path": str(out_dir), **meta})
    return out_dir


def _cache_key(kw: dict) -> str:
    parts = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(kw.items())}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_tiny_llama(cache_dir: Path, name: str, **kw) -> Path:
    """Reuse cache_dir/name if it was built with the same arguments; build it atomically otherwise."""
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    key = _cache_key(kw)
    marker = target / "relctl_cache_key"
    if marker.is_file() and marker.read_text().strip() == key:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        build_tiny_llama(tmp, **kw)
        (tmp / "relctl_cache_key").write_text(key)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # readers see either the old folder or the complete new one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
