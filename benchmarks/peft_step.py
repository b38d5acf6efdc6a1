"""One LoRA training step of MiniLM in PyTorch + peft: the reference for `lora_step` (Burn).

The same model and step as benchmarks/src/bin/lora_step.rs: all-MiniLM-L6-v2's shapes (BertModel
from its config, random weights: the cost depends on shapes only), LoRA r = 8, alpha = 16,
dropout 0 on query and value (peft), mean pooling over the attention mask, a linear head over 8
classes, cross-entropy, AdamW lr 5e-3; a batch of `--batch` texts of exactly `--seq` tokens.

Prints one JSON line: milliseconds per training step (forward + backward + AdamW, loss read back
with .item()) and per no-grad forward of the same batch, medians of `--steps` timed repetitions
after `--warmup` untimed ones.

    python benchmarks/peft_step.py --device cpu --threads 1
    python benchmarks/peft_step.py --device cuda --precision bf16
"""

import argparse
import json
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertModel


def minilm_config() -> BertConfig:
    return BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


class Classifier(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(384, classes)

    def forward(self, ids, mask):
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(pooled)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.precision]
    device = torch.device(a.device)

    encoder = BertModel(minilm_config(), add_pooling_layer=False)
    encoder = get_peft_model(
        encoder, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"])
    )
    model = Classifier(encoder, 8).to(device=device, dtype=dtype)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1000, 30000, (a.batch, a.seq), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    ids = ids.to(device)
    mask = torch.ones(a.batch, a.seq, dtype=torch.long, device=device)
    labels = (torch.arange(a.batch) % 8).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    train = []
    for i in range(a.warmup + a.steps):
        sync()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(ids, mask).float(), labels)
        loss.backward()
        opt.step()
        loss.item()
        sync()
        if i >= a.warmup:
            train.append((time.perf_counter() - t) * 1e3)
    forward = []
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            sync()
            t = time.perf_counter()
            model(ids, mask).float().cpu()
            sync()
            if i >= a.warmup:
                forward.append((time.perf_counter() - t) * 1e3)
    train_ms = statistics.median(train)
    print(
        json.dumps(
            {
                "framework": "pytorch+peft",
                "torch": torch.__version__,
                "backend": a.device,
                "threads": torch.get_num_threads(),
                "precision": a.precision,
                "batch": a.batch,
                "seq": a.seq,
                "train_ms": round(train_ms, 2),
                "forward_ms": round(statistics.median(forward), 2),
                "train_examples_per_s": round(a.batch / (train_ms / 1e3), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
