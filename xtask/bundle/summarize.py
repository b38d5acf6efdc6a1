#!/usr/bin/env python3
"""Summarises a GPU-bundle run (run.sh) into at most three small files under --out:
summary.json (every figure: speed rows, agreement, the text5 runs' matrices and wall times),
summary.md (the same as tables) and log.txt (the run's log, last 1 MB). Standard library only."""
import argparse
import json
import pathlib

CELL_TOLERANCE = 6.25  # points: two of a task's 32 test rows (as `cargo xtask agree`)
LOSS_TOLERANCE = 1e-2  # relative, per task's last-epoch loss


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compare(report, expected):
    rows, ref = report["matrix"]["rows"], expected["matrix"]["rows"]
    if len(rows) != len(ref) or any(len(a) != len(b) for a, b in zip(rows, ref)):
        return {"ok": False, "why": "matrix shapes differ"}
    cell = max(abs(a - b) * 100 for r, q in zip(rows, ref) for a, b in zip(r, q))
    losses = [
        abs(a["last_epoch_loss"] - b["last_epoch_loss"]) / max(abs(b["last_epoch_loss"]), 1e-12)
        for a, b in zip(report["tasks"], expected["tasks"])
    ]
    loss = max(losses) if losses else 0.0
    return {
        "ok": cell <= CELL_TOLERANCE and loss <= LOSS_TOLERANCE,
        "max_cell_points": round(cell, 3),
        "max_loss_relative": loss,
        "op": report["op"],
        "op_ndarray": expected["op"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=pathlib.Path, required=True)
    p.add_argument("--work", type=pathlib.Path, required=True)
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--elapsed", type=int, default=0)
    a = p.parse_args()
    bundle = read_json(a.bundle / "bundle.json") or {}
    summary = {"bundle": bundle, "elapsed_s": a.elapsed, "speed": {}, "agree": {}, "paper": {}}

    for path in sorted(a.work.glob("speed-*.json")):
        summary["speed"][path.stem[len("speed-"):]] = read_json(path)

    expected = read_json(a.bundle / "expected" / "agree-ndarray.json")
    for path in sorted(a.work.glob("agree/*/report.json")):
        report = read_json(path)
        backend = path.parent.name
        if report is None or not report.get("completed"):
            summary["agree"][backend] = {"ok": False, "why": "no complete report"}
        elif expected is None:
            summary["agree"][backend] = {"ok": False, "why": "no bundled ndarray report"}
        else:
            summary["agree"][backend] = compare(report, expected)

    seconds = {}
    times = a.work / "paper-seconds.txt"
    if times.exists():
        for line in times.read_text().splitlines():
            name, _, s = line.partition(" ")
            seconds[name] = int(s)
    for path in sorted(a.work.glob("paper/*/report.json")):
        report = read_json(path)
        if report is None:
            continue
        summary["paper"][path.parent.name] = {
            "completed": report.get("completed"),
            "op": report.get("op"),
            "bwt": report.get("bwt"),
            "matrix": report["matrix"]["rows"],
            "train_seconds": sum(t["train_seconds"] for t in report["tasks"]),
            "eval_seconds": sum(t["eval_seconds"] for t in report["tasks"]),
            "wall_seconds": seconds.get(path.parent.name),
        }

    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    md = [f"# GPU bundle run ({bundle.get('built', '?')}), {a.elapsed} s\n"]
    md.append("## MiniLM LoRA step: Burn against PyTorch + peft\n")
    md.append("| backend | precision | Burn step ms | PyTorch step ms | throughput Burn / PyTorch | Burn fwd ms | PyTorch fwd ms | fwd ratio |")
    md.append("|---|---|---|---|---|---|---|---|")
    for backend, rows in summary["speed"].items():
        for r in rows or []:
            md.append(
                f"| {backend} | {r['precision']} | {r['burn_train_ms']:.1f} | {r['torch_train_ms']:.1f} | "
                f"{r['torch_train_ms'] / r['burn_train_ms']:.2f} | {r['burn_forward_ms']:.1f} | "
                f"{r['torch_forward_ms']:.1f} | {r['torch_forward_ms'] / r['burn_forward_ms']:.2f} |"
            )
    md.append("\n## Agreement with ndarray (SeqLoRA, tiny text5)\n")
    md.append("| backend | within tolerance | max Δ cell (points) | max Δ loss (rel.) | OP | OP ndarray |")
    md.append("|---|---|---|---|---|---|")
    for backend, c in summary["agree"].items():
        md.append(
            f"| {backend} | {c.get('ok')} | {c.get('max_cell_points', c.get('why', ''))} | "
            f"{c.get('max_loss_relative', '')} | {c.get('op', '')} | {c.get('op_ndarray', '')} |"
        )
    md.append("\n## text5 runs\n")
    md.append("| method | completed | OP % | BWT % | train s | eval s | wall s |")
    md.append("|---|---|---|---|---|---|---|")
    for name, r in summary["paper"].items():
        pct = lambda v: "–" if v is None else f"{100 * v:.1f}"
        md.append(
            f"| {name} | {r['completed']} | {pct(r['op'])} | {pct(r['bwt'])} | "
            f"{r['train_seconds']:.0f} | {r['eval_seconds']:.0f} | {r['wall_seconds']} |"
        )
    (a.out / "summary.md").write_text("\n".join(md) + "\n")

    log = a.work / "log.txt"
    if log.exists():
        (a.out / "log.txt").write_bytes(log.read_bytes()[-1_000_000:])
    print((a.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
