"""A describer over a local vision-language model (Qwen2.5-VL, LLaVA, SmolVLM, ...) loaded with transformers.

The folder holds a model for `AutoModelForImageTextToText` and a processor with a chat template. Each question is
one user turn whose content is the sampled frames (as images) and text parts, run through the processor's chat
template and answered greedily; the reply is read exactly as the chat backend's is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .base import BackendConfig
from .local_models import model_folder, resolve_device, resolve_dtype
from .replies import Part, PromptedDescriber

logger = logging.getLogger(__name__)


class LocalVLMDescriber(PromptedDescriber):
    """`Describer` over the vision-language model saved in the folder `config.model`.

    max_new_tokens: the reply's token limit (a caption or a small JSON object fits in the default).
    device, dtype: where and in what precision the model runs (default: the GPU in bf16 if there is one).
    """

    def __init__(
        self,
        config: BackendConfig,
        *,
        max_new_tokens: int = 256,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        # Checked before the heavy imports, so that a wrong path fails at once.
        folder = model_folder(config, "describer")

        from transformers import AutoModelForImageTextToText, AutoProcessor

        super().__init__(config, name=f"local VLM {folder.name}")
        self.max_new_tokens = max_new_tokens
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(f"the processor in {folder} has no chat template; the describer needs one")
        self.model = AutoModelForImageTextToText.from_pretrained(
            folder, dtype=self.dtype, use_safetensors=True, local_files_only=True
        )
        self.model.to(self.device).eval()
        logger.info("loaded %s (%s) on %s in %s", folder, type(self.model).__name__, self.device, self.dtype)

    @staticmethod
    def messages(parts: Sequence[Part]) -> list[dict]:
        """One user turn in the processors' chat format: frames as images, text as text, in order."""
        content = []
        for part in parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                content.append({"type": "image", "image": Image.fromarray(np.ascontiguousarray(part))})
        return [{"role": "user", "content": content}]

    def inputs(self, parts: Sequence[Part]):
        """The processor's model inputs for `parts`, on the model's device, images in its precision."""
        inputs = self.processor.apply_chat_template(
            self.messages(parts), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        return inputs.to(self.device, dtype=self.dtype)

    @torch.inference_mode()
    def ask(self, parts: Sequence[Part]) -> str:
        inputs = self.inputs(parts)
        output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        # generate returns the prompt followed by the reply; only the reply is decoded.
        reply = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(reply, skip_special_tokens=True)[0]
