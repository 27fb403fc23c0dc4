"""Seconds per edit of a two-second clip by the bundled demo model, by precision and by how guidance runs its branches.

Variants: fp32 or bf16 weights and activations, and classifier-free guidance's conditional and unconditional
branches as two forwards per step ("separate") or one forward of twice the batch ("batched"). Each variant edits the
same clip with the model's defaults and the same seed; after one untimed warm-up edit per variant, the variants take
turns for `--repeats` rounds and the table shows each one's median wall time, its speed-up over fp32 + separate (the
pipeline before these options existed), and the PSNR of its frames against that variant's frames (how far the
faster arithmetic moves the result; above 40 dB the difference is invisible).

bf16 can only be fast where the CPU multiplies it in hardware (AVX512-BF16 or AMX; `editor.loading.native_bf16`),
and even there it may not be: the line above the table says whether this one does, and what the probe the loader
uses to choose the default precision measured (`editor.loading.cpu_bf16_speedup`). Run from the repository root:
`python benchmarks/demo_edit_speed.py [--repeats 5] [--threads N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# The script is run as a file, not as a module of the package: make `import editor` work from a source checkout.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from editor.loading import LoadOptions, cpu_bf16_speedup, load_pipeline, native_bf16  # noqa: E402
from editor.video import read_video  # noqa: E402

EXAMPLES = REPO_ROOT / "assets" / "examples" / "demo" / "manifest.jsonl"
VARIANTS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="the preset or pipeline folder (default: the bundled demo)")
    parser.add_argument("--clip", type=Path, help="video to edit (default: the first example clip)")
    parser.add_argument("--instruction", help="(default: the first example's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    example = json.loads(EXAMPLES.read_text().splitlines()[0])
    clip = args.clip or REPO_ROOT / example["source"]["path"]
    instruction = args.instruction or example["instruction"]

    pipes = {}
    for precision in ("fp32", "bf16"):
        pipes[precision] = load_pipeline(args.model, options=LoadOptions(device="cpu", precision=precision))
        pipes[precision].set_progress_bar_config(disable=True)
    fps = pipes["fp32"].defaults.fps
    frames = read_video(clip, fps=fps, end=2.0).frames

    def edit(precision: str, batched: bool) -> np.ndarray:
        generator = torch.Generator().manual_seed(0)
        return pipes[precision](frames, instruction, generator=generator, batch_guidance=batched).frames

    outputs = {variant: edit(*variant) for variant in VARIANTS}  # also the warm-up
    times = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            began = time.perf_counter()
            edit(*variant)
            times[variant].append(time.perf_counter() - began)

    reference = statistics.median(times[VARIANTS[0]])
    native = native_bf16(torch.device("cpu"))
    probe = f", the loader's probe: bf16 {cpu_bf16_speedup():.2f}x as fast" if native else ""
    threads = torch.get_num_threads()
    print(f"{clip.name}: {len(frames)} frames, {threads} threads, native bf16 on this CPU: {native}{probe}")
    print(f"{'precision':<9} {'guidance':<9} {'median s':>8} {'speed-up':>8} {'PSNR vs fp32 separate':>22}")
    for variant in VARIANTS:
        median = statistics.median(times[variant])
        quality = psnr(outputs[variant], outputs[VARIANTS[0]])
        batched = "batched" if variant[1] else "separate"
        print(f"{variant[0]:<9} {batched:<9} {median:8.2f} {reference / median:7.2f}x {quality:20.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
