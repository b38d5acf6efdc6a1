#!/usr/bin/env python3
"""TIES merges computed by Hugging Face PEFT's own `ties` (peft/utils/merge_utils.py), the fixture
of cl-core's `peft::merge` test (`ties_equals_peft`).

Writes crates/cl-core/fixtures/peft_ties.json: cases of T task tensors (flattened, float32), their
weights λ_t, a density, and PEFT's merged tensor (`expected`). The cases cover random values at
several densities (including one where int(density·n) = 0 and density 1), values with many equal
magnitudes (ties at the trim threshold), a 2-D tensor, and negative weights.

Where equal magnitudes straddle the threshold (`ties_at_threshold`), which of them PEFT keeps is
decided by torch.topk's selection algorithm, not by index (on the CPU, kept tied entries such as
0, 11, 20, 23, 28, 29 out of 0, 1, 2, 8, 11, ...; CUDA's radix select differs again), so no other
implementation can match it there. Each case therefore also records `expected_stable_trim`: PEFT's
own sign election, weighting and disjoint merge after a trim that keeps the lowest indices among
equal magnitudes, which is cl-peft's rule.

PEFT's `merge_utils` imports only torch, so it is loaded from its file without importing the
`peft` package (which would need transformers):

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy && /tmp/tv/bin/pip install --no-deps peft
    /tmp/tv/bin/python benchmarks/parity/peft_ties_fixture.py

The committed fixture was made with torch 2.x on the CPU and peft 0.21.2 (recorded in the file).
"""
import argparse
import importlib.util
import json
import pathlib

import torch


def load_merge_utils():
    spec = importlib.util.find_spec("peft")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("peft is not installed (pip install --no-deps peft)")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "utils" / "merge_utils.py"
    module_spec = importlib.util.spec_from_file_location("peft_merge_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, path


def peft_version():
    from importlib.metadata import version

    return version("peft")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parents[2]
    parser.add_argument("--out", type=pathlib.Path, default=root / "crates/cl-core/fixtures/peft_ties.json")
    args = parser.parse_args()
    merge_utils, path = load_merge_utils()
    gen = torch.Generator().manual_seed(0)

    def random(t, shape):
        return [torch.randn(shape, generator=gen) for _ in range(t)]

    def quantised(t, shape):
        # Values in {-2, -1, 0, 1, 2}: many equal magnitudes at every threshold.
        return [torch.randint(-2, 3, shape, generator=gen).float() for _ in range(t)]

    cases = []

    def straddles(tensor, density):
        # True when equal magnitudes straddle the trim threshold: then which of them PEFT keeps
        # depends on torch.topk's selection algorithm (not on the index).
        flat = tensor.abs().reshape(-1)
        k = int(density * flat.numel())
        if density >= 1 or k == 0:
            return False
        ordered = torch.sort(flat, descending=True).values
        return k < flat.numel() and bool(ordered[k - 1] == ordered[k])

    def stable_ties(tensors, weights, density):
        # PEFT's own `ties` steps (sign election, weighting, disjoint merge) after a trim that
        # keeps the lowest indices among equal magnitudes (a stable sort), as cl-peft does.
        def trim(tensor):
            if density >= 1:
                return tensor
            flat = tensor.reshape(-1)
            k = int(density * flat.numel())
            keep = torch.sort(flat.abs(), descending=True, stable=True).indices[:k]
            mask = torch.zeros_like(flat)
            mask[keep] = 1
            return (flat * mask).reshape(tensor.shape)

        stacked = torch.stack([trim(t) for t in tensors], dim=0)
        sign_mask = merge_utils.calculate_majority_sign_mask(stacked, method="total")
        w = merge_utils.reshape_weight_task_tensors(stacked, weights)
        return merge_utils.disjoint_merge(stacked * w, sign_mask)

    def add(name, tensors, weights, density):
        w = torch.tensor(weights)
        merged = merge_utils.ties(tensors, w, density)
        cases.append(
            {
                "name": name,
                "shape": list(tensors[0].shape),
                "tensors": [t.reshape(-1).tolist() for t in tensors],
                "weights": weights,
                "density": density,
                "ties_at_threshold": any(straddles(t, density) for t in tensors),
                "expected": merged.reshape(-1).tolist(),
                "expected_stable_trim": stable_ties(tensors, w, density).reshape(-1).tolist(),
            }
        )

    for density in [0.05, 0.2, 0.5, 0.7, 1.0]:
        add(f"random n=40 density={density}", random(3, (40,)), [1.0, 0.5, 0.25], density)
    add("random n=10 density=0.05 keeps nothing", random(2, (10,)), [1.0, 1.0], 0.05)
    for density in [0.2, 0.5, 0.8]:
        add(f"ties n=30 density={density}", quantised(3, (30,)), [0.7, 0.7, 0.7], density)
    add("2-D 6x8 density=0.3", random(4, (6, 8)), [0.3, -0.5, 1.2, 0.8], 0.3)
    add("ties 2-D 5x5 density=0.4", quantised(2, (5, 5)), [1.0, 2.0], 0.4)

    payload = {
        "source": f"peft {peft_version()} merge_utils.ties ({path.name}), torch {torch.__version__}",
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload) + "\n")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
