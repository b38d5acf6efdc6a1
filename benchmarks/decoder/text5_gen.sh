#!/usr/bin/env bash
# Every LoRA method on text5-gen (SmolLM2-135M-Instruct, instruction prompts, causal LM loss on
# the answer) at a size that finishes on a 2-core CPU: 16 training rows and 8 test rows per
# task, 64-token prompts, 1 epoch of batches of 8 (2 steps a task), AdamW lr 5e-3
# (benchmarks/decoder/quick.json).
# Usage: benchmarks/decoder/text5_gen.sh [out-dir] (after `cargo build --release -p cl-cli`).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-runs/text5-gen}"
cl=./target/release/cl
for method in seq-lora replay ilora rkif arith mtl olora ewc inc-lora mtl-cumulative; do
  if [ -s "$out/$method/report.json" ] && grep -q '"completed": *true' "$out/$method/report.json"; then
    continue
  fi
  "$cl" run --method "$method" --stream text5-gen --max-train 16 --test-per-task 8 \
    --max-len 64 --epochs 1 --batch-size 8 --config benchmarks/decoder/quick.json \
    --out "$out/$method" --resume > "$out-$method.log" 2>&1 || echo "$method failed (see $out-$method.log)"
done
