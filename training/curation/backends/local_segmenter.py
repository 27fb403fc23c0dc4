"""A segmenter over a local transformers segmentation model, run frame by frame.

Two families load from a folder (model and image processor, safetensors only):

* semantic segmentation (`AutoModelForSemanticSegmentation`: SegFormer, UperNet, DPT, ...): one object per class
  present in the clip; its mask is where that class wins the per-pixel argmax, its score the mean confidence there.
* universal segmentation (`AutoModelForUniversalSegmentation`: Mask2Former, MaskFormer): the processor's instance
  post-processing per frame; instances are linked across frames by label and mask overlap, so that each object is
  one mask over the whole clip, scored by its mean score.

Frames are analysed at most `max_side` pixels on their longer side (masks are resized back to the clip's size with
nearest-neighbour interpolation), optionally only every `frame_stride`-th frame, the others taking the nearest
analysed frame's masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .base import BackendConfig, SegmentedObject
from .local_models import model_folder, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)


@dataclass
class _Track:
    label_id: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # analysed frame index -> bool [h, w]
    scores: list[float] = field(default_factory=list)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


class LocalSegmenter:
    """`Segmenter` over the segmentation model saved in the folder `config.model`.

    threshold: the least score an instance needs (universal models).
    min_area: the least fraction of the clip's pixels an object must cover to be kept.
    iou_threshold: the least overlap with an instance of the previous analysed frame to continue its track.
    ignore_labels: class names never returned (a semantic model's "background", say).
    """

    def __init__(
        self,
        config: BackendConfig,
        *,
        threshold: float = 0.5,
        min_area: float = 0.001,
        iou_threshold: float = 0.3,
        max_side: int = 512,
        frame_stride: int = 1,
        batch_size: int = 4,
        ignore_labels: tuple[str, ...] = ("background",),
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        # Checked before the heavy imports, so that a wrong path fails at once.
        folder = model_folder(config, "segmenter")

        from transformers import (
            AutoConfig,
            AutoImageProcessor,
            AutoModelForSemanticSegmentation,
            AutoModelForUniversalSegmentation,
        )
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES,
            MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES,
        )

        self.name = f"local segmenter {folder.name}"
        self.threshold = threshold
        self.min_area = min_area
        self.iou_threshold = iou_threshold
        self.max_side = max_side
        self.frame_stride = max(1, frame_stride)
        self.batch_size = max(1, batch_size)
        self.ignore_labels = {label.lower() for label in ignore_labels}
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)

        model_type = AutoConfig.from_pretrained(folder, local_files_only=True).model_type
        # OneFormer is universal too, but needs a task prompt per image that this backend does not send.
        if model_type in MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES and model_type != "oneformer":
            self.universal = True
            auto_model = AutoModelForUniversalSegmentation
        elif model_type in MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES:
            self.universal = False
            auto_model = AutoModelForSemanticSegmentation
        else:
            raise ValueError(
                f"{folder} holds a {model_type!r} model; the segmenter takes a semantic segmentation model "
                "(SegFormer, UperNet, ...) or Mask2Former / MaskFormer"
            )
        self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.model = auto_model.from_pretrained(folder, dtype=self.dtype, use_safetensors=True, local_files_only=True)
        self.model.to(self.device).eval()
        self.id2label = {int(key): value for key, value in self.model.config.id2label.items()}
        logger.info("loaded %s (%s) on %s", folder, type(self.model).__name__, self.device)

    def label(self, label_id: int) -> str:
        return self.id2label.get(label_id, f"class {label_id}")

    def analysis_size(self, height: int, width: int) -> tuple[int, int]:
        scale = min(1.0, self.max_side / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))

    @torch.inference_mode()
    def segment(self, frames: np.ndarray) -> list[SegmentedObject]:
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"frames must be uint8 [F, H, W, 3] with F >= 1, got {frames.shape}")
        count, height, width = frames.shape[:3]
        analysed = list(range(0, count, self.frame_stride))
        if analysed[-1] != count - 1:
            analysed.append(count - 1)
        size = self.analysis_size(height, width)
        tracks: list[_Track] = []
        for start in range(0, len(analysed), self.batch_size):
            batch = analysed[start : start + self.batch_size]
            images = [np.ascontiguousarray(frames[index]) for index in batch]
            inputs = self.processor(images=images, return_tensors="pt").to(self.device, dtype=self.dtype)
            outputs = self.model(**inputs)
            per_frame = (
                self.universal_detections(outputs, size) if self.universal else self.semantic_detections(outputs, size)
            )
            for slot, detections in zip(batch, per_frame, strict=True):
                self.link(tracks, slot, detections)
        return self.objects(tracks, analysed, count, height, width)

    def semantic_detections(self, outputs, size: tuple[int, int]) -> list[list[tuple[int, np.ndarray, float]]]:
        logits = outputs.logits.float()
        logits = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        confidence, labels = logits.softmax(dim=1).max(dim=1)
        confidence, labels = confidence.cpu().numpy(), labels.cpu().numpy()
        result = []
        for frame_labels, frame_confidence in zip(labels, confidence, strict=True):
            detections = []
            for label_id in np.unique(frame_labels):
                mask = frame_labels == label_id
                detections.append((int(label_id), mask, float(frame_confidence[mask].mean())))
            result.append(detections)
        return result

    def universal_detections(self, outputs, size: tuple[int, int]) -> list[list[tuple[int, np.ndarray, float]]]:
        count = outputs.class_queries_logits.shape[0]
        processed = self.processor.post_process_instance_segmentation(
            outputs, threshold=self.threshold, target_sizes=[size] * count
        )
        result = []
        for frame in processed:
            segmentation = frame["segmentation"]
            segmentation = segmentation.cpu().numpy() if torch.is_tensor(segmentation) else np.asarray(segmentation)
            detections = []
            for info in frame["segments_info"]:
                mask = segmentation == info["id"]
                if mask.any():
                    detections.append((int(info["label_id"]), mask, float(info["score"])))
            result.append(detections)
        return result

    def link(self, tracks: list[_Track], slot: int, detections: list[tuple[int, np.ndarray, float]]) -> None:
        """Adds one analysed frame's detections to the tracks, best-scored first."""
        taken: set[int] = set()
        for label_id, mask, score in sorted(detections, key=lambda item: -item[2]):
            if self.label(label_id).lower() in self.ignore_labels:
                continue
            best, best_iou = None, -1.0
            for index, track in enumerate(tracks):
                if index in taken or track.label_id != label_id or slot in track.masks:
                    continue
                if self.universal:
                    overlap = _iou(track.masks[max(track.masks)], mask)
                    if overlap < self.iou_threshold:
                        continue
                else:
                    # A semantic class is one region per frame: it always continues its own track.
                    overlap = 1.0
                if overlap > best_iou:
                    best, best_iou = index, overlap
            if best is None:
                tracks.append(_Track(label_id))
                best = len(tracks) - 1
            taken.add(best)
            tracks[best].masks[slot] = mask
            tracks[best].scores.append(score)

    def objects(
        self, tracks: list[_Track], analysed: list[int], count: int, height: int, width: int
    ) -> list[SegmentedObject]:
        # Every frame takes the masks of the nearest analysed frame.
        nearest = [min(analysed, key=lambda slot, index=index: abs(slot - index)) for index in range(count)]
        objects = []
        for track in tracks:
            full = {
                slot: cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
                for slot, mask in track.masks.items()
            }
            empty = np.zeros((height, width), dtype=bool)
            mask = np.stack([full.get(slot, empty) for slot in nearest])
            if mask.mean() < self.min_area:
                continue
            objects.append(SegmentedObject(self.label(track.label_id), mask, float(np.mean(track.scores))))
        objects.sort(key=lambda item: -item.score)
        return objects
