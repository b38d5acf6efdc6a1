"""Burn (lora_step) against PyTorch + peft (peft_step.py), side by side on one machine.

Alternates the two programs `--rounds` times per precision (so that machine load hits both
alike), takes the median of each one's per-round medians, and prints a markdown table with the
throughput ratio Burn / PyTorch (above 1: Burn is faster).

    # CPU, one thread each (Burn's ndarray backend is single-threaded here):
    python benchmarks/speed_vs_peft.py --burn-bin target/release/lora_step --burn-backend ndarray \
        --torch-device cpu --threads 1
    # GPU (binary built with --features cuda):
    python benchmarks/speed_vs_peft.py --burn-bin ./lora_step --burn-backend cuda \
        --torch-device cuda --precisions f32,f16,bf16
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"no JSON line from {' '.join(cmd)}:\n{out}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burn-bin", required=True)
    p.add_argument("--burn-backend", default="ndarray")
    p.add_argument("--torch-device", default="cpu")
    p.add_argument("--precisions", default="f32")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the rows to this file (JSON)")
    a = p.parse_args()
    sizes = ["--batch", str(a.batch), "--seq", str(a.seq), "--steps", str(a.steps)]
    rows = []
    for precision in a.precisions.split(","):
        burn, torch = [], []
        for _ in range(a.rounds):
            burn.append(
                run_json(
                    [a.burn_bin, "--backend", a.burn_backend, "--precision", precision] + sizes
                )
            )
            torch.append(
                run_json(
                    [sys.executable, os.path.join(HERE, "peft_step.py"), "--device",
                     a.torch_device, "--precision", precision, "--threads", str(a.threads)]
                    + sizes
                )
            )
        b_train = statistics.median(r["train_ms"] for r in burn)
        t_train = statistics.median(r["train_ms"] for r in torch)
        b_fwd = statistics.median(r["forward_ms"] for r in burn)
        t_fwd = statistics.median(r["forward_ms"] for r in torch)
        rows.append((precision, b_train, t_train, b_fwd, t_fwd, torch[0]["threads"]))
    print(
        f"MiniLM LoRA step, batch {a.batch}, seq {a.seq}; Burn {a.burn_backend} vs PyTorch "
        f"{a.torch_device}; medians of {a.rounds} alternating rounds x {a.steps} steps\n"
    )
    print("| precision | Burn step ms | PyTorch step ms | Burn / PyTorch throughput | "
          "Burn fwd ms | PyTorch fwd ms | fwd ratio | torch threads |")
    print("|---|---|---|---|---|---|---|---|")
    for precision, bt, tt, bf, tf, threads in rows:
        print(f"| {precision} | {bt:.1f} | {tt:.1f} | {tt / bt:.2f} | {bf:.1f} | {tf:.1f} | "
              f"{tf / bf:.2f} | {threads} |")
    if a.json:
        keys = ["precision", "burn_train_ms", "torch_train_ms", "burn_forward_ms",
                "torch_forward_ms", "torch_threads"]
        with open(a.json, "w") as f:
            json.dump([dict(zip(keys, r)) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
