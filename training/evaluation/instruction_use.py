"""What does a model read of its instruction? Its denoising error on cached pairs, with and without each text path.

`python -m training.evaluation.instruction_use --model PIPELINE --cache CACHE [--per-group N] [--sigmas 0.5 1.0]
[--output results.json]`

HunyuanVideo's transformer takes an instruction two ways: its token states, which the video tokens attend to, and a
pooled sentence vector, which modulates every block like the timestep. For each cached pair and noise level the model
predicts the clean target four times, from the same noisy target and source: with the instruction whole, with the
empty instruction, with only its tokens (the empty instruction's pooled vector) and with only its pooled vector (the
empty instruction's tokens). Each prediction's error is reported relative to the error of returning the source, so
1.0 is "as far from the target as the unedited source" and 0.0 a perfect edit. Where the instruction's error is no
lower than the empty one's, the model has not tied the words to the change; the noise level where that happens
matters: the sampler's first steps, at sigma near 1, are where an edit's layout and colour are decided, and there
the noisy target tells the model nothing.

Pairs are grouped by edit type, and style edits by the style their instruction names. The cache must have been
encoded by the model's own codec and text encoder (`python -m training.cache model=PIPELINE`).

Exit codes: 0 done, 2 bad arguments or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from training import flow_matching

logger = logging.getLogger(__name__)

CONDITIONS = ("instruction", "empty", "tokens_only", "pooled_only")


def group_of(record: dict) -> str:
    """A pair's edit type; for a style edit, with the style its instruction names (`style:faded`)."""
    edit_type = str(record.get("edit_type", "unknown"))
    if edit_type == "style":
        from training.world.language import parse_instruction

        intent = parse_instruction(record.get("instruction", ""))
        return f"style:{intent.style if intent is not None and intent.style else 'undo'}"
    return edit_type


def _texts(sample: dict, empty: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The four instructions a pair is tried with, each a batch of one."""
    whole = {key: sample[key][None] for key in empty}
    blank = {key: value[None] for key, value in empty.items()}
    return {
        "instruction": whole,
        "empty": blank,
        "tokens_only": {**whole, "text_pooled": blank["text_pooled"]},
        "pooled_only": {**blank, "text_pooled": whole["text_pooled"]},
    }


@torch.no_grad()
def pair_errors(
    transformer, sample: dict, empty: dict[str, torch.Tensor], sigmas: Sequence[float], seed: int, guidance: float
) -> dict:
    """`{condition: {str(sigma): relative error}}` for one cached pair: the error of the clean target implied by the
    model's velocity, over the error of the source, at one fixed noise draw per sigma. `guidance` is the embedded
    guidance of guidance-distilled models (ignored by others)."""
    target = sample["target_latents"][None].float()  # 1, C, F, H, W
    source = sample["source_latents"][None].float()
    dtype = transformer.dtype
    baseline = ((source - target) ** 2).mean().clamp_min(1e-12)
    generator = torch.Generator().manual_seed(seed)
    embedded = torch.tensor([guidance * 1000.0]) if transformer.config.guidance_embeds else None
    texts = _texts(sample, empty)
    errors: dict[str, dict[str, float]] = {condition: {} for condition in CONDITIONS}
    for sigma in sigmas:
        noise = torch.randn(target.shape, generator=generator)
        noisy = flow_matching.noisy(target, noise, torch.tensor([sigma]))
        for condition, text in texts.items():
            velocity = transformer(
                hidden_states=noisy.to(dtype), timestep=torch.tensor([sigma * 1000.0]),
                encoder_hidden_states=text["text_states"].to(dtype), encoder_attention_mask=text["text_mask"],
                pooled_projections=text["text_pooled"].to(dtype), guidance=embedded, source_latents=source.to(dtype),
                return_dict=False,
            )[0].float()  # fmt: skip
            clean = noisy - sigma * velocity  # the line x_sigma = (1 - sigma) x0 + sigma noise, walked back to 0
            errors[condition][str(sigma)] = float(((clean - target) ** 2).mean() / baseline)
    return errors


def summarise(per_pair: list[dict], sigmas: Sequence[float]) -> dict:
    """Mean relative error per group, condition and sigma, and how many pairs each group had."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for pair in per_pair:
        by_group[pair["group"]].append(pair["errors"])
    summary = {}
    for group, pairs in sorted(by_group.items()):
        means = {
            condition: {str(sigma): float(np.mean([p[condition][str(sigma)] for p in pairs])) for sigma in sigmas}
            for condition in CONDITIONS
        }
        summary[group] = {"pairs": len(pairs), "relative_error": means}
    return summary


def table(summary: dict, sigmas: Sequence[float]) -> str:
    """A Markdown table: a row per group, a column per sigma and condition."""
    header = ["group", "pairs"] + [f"{condition} @{sigma}" for sigma in sigmas for condition in CONDITIONS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, entry in summary.items():
        errors = entry["relative_error"]
        cells = [f"{errors[condition][str(sigma)]:.3f}" for sigma in sigmas for condition in CONDITIONS]
        lines.append("| " + " | ".join([group, str(entry["pairs"]), *cells]) + " |")
    return "\n".join(lines)


def measure(transformer, cache: Path, records: dict[str, dict], *, per_group: int, sigmas: Sequence[float],
            seed: int = 0, guidance: float = 1.0) -> dict:  # fmt: skip
    """The first `per_group` cached pairs of each group, each measured by `pair_errors`."""
    from training.cache import CachedDataset

    dataset = CachedDataset(cache)
    if not dataset.paired:
        raise ValueError(f"{cache} holds captioned clips, not editing pairs: there is no source to measure against")
    empty = dataset.empty_prompt()
    taken: dict[str, int] = defaultdict(int)
    per_pair = []
    for index, sample_id in enumerate(dataset.ids):
        record = records.get(sample_id)
        if record is None:
            raise ValueError(f"cached pair {sample_id!r} is not in the manifest the cache was made from")
        group = group_of(record)
        if taken[group] >= per_group:
            continue
        taken[group] += 1
        errors = pair_errors(transformer, dataset[index], empty, sigmas, seed + index, guidance)
        per_pair.append({"id": sample_id, "group": group, "instruction": record.get("instruction"), "errors": errors})
        logger.info("%s (%s): %s", sample_id, group, {c: round(e[str(sigmas[-1])], 3) for c, e in errors.items()})
    return {"sigmas": list(sigmas), "groups": summarise(per_pair, sigmas), "pairs": per_pair}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluation.instruction_use", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, required=True, help="pipeline folder (its transformer is measured)")
    parser.add_argument("--cache", type=Path, required=True, help="a cache of editing pairs made with that model")
    parser.add_argument("--manifest", type=Path, default=None, help="the cache's manifest (default: the one it names)")
    parser.add_argument("--per-group", type=int, default=16, help="pairs measured per group")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 0.9, 1.0], help="noise levels in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    parser.add_argument("--output", type=Path, default=None, help="results JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from editor.convert import load_transformer
    from training.cache import CacheIndex
    from training.curation.manifest import read_jsonl

    try:
        if args.per_group < 1:
            raise ValueError(f"--per-group {args.per_group} must be positive")
        if any(not 0 < sigma <= 1 for sigma in args.sigmas):
            raise ValueError(f"--sigmas {args.sigmas} must each be in (0, 1]")
        manifest = args.manifest or CacheIndex.load(args.cache).manifest
        if manifest is None:
            raise ValueError(f"{args.cache} names no manifest: pass --manifest")
        records = {record["id"]: record for record in read_jsonl(manifest)}
        transformer = load_transformer(args.model / "transformer").eval()
        results = measure(transformer, args.cache, records, per_group=args.per_group, sigmas=args.sigmas,
                          seed=args.seed)  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    results = {"model": str(args.model), "cache": str(args.cache), **results}
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")
    sys.stdout.write(table(results["groups"], args.sigmas) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
