"""Tiny random stand-ins for every component, built offline: tokenizers trained here, models of a few kB."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from editor.pipeline import VideoEditPipeline
from editor.presets import EditDefaults
from editor.text_encoders import LlamaClipTextEncoder, SentenceTextEncoder
from editor.transformer import ICVETransformer3DModel

CORPUS = [
    "replace the dog with a cat",
    "add black glasses to the person's face",
    "turn the wolf into a red fox",
    "make it a snowy winter scene",
    "remove the flower vase",
    "change the marigold to a purple flower",
    "make the ball blue",
]

TINY_DEFAULTS = EditDefaults(
    num_inference_steps=2, guidance_scale=3.0, embedded_guidance_scale=1.0, height=64, width=64, num_frames=9, fps=8.0
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on a few instructions, with BOS/EOS around each text."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


def tiny_transformer(text_dim: int, pooled_dim: int, seed: int = 0, **overrides) -> ICVETransformer3DModel:
    torch.manual_seed(seed)
    config = dict(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=2,
        patch_size_t=1,
        text_embed_dim=text_dim,
        pooled_projection_dim=pooled_dim,
        rope_axes_dim=(4, 4, 4),
    )
    config.update(overrides)
    return ICVETransformer3DModel(**config).eval()


def tiny_vae(seed: int = 0) -> AutoencoderKLHunyuanVideo:
    torch.manual_seed(seed)
    return AutoencoderKLHunyuanVideo(
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
    ).eval()


def tiny_llama_clip_encoder(seed: int = 0) -> LlamaClipTextEncoder:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    llama = LlamaModel(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=2,
            pad_token_id=0,
        )
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        )
    )
    return LlamaClipTextEncoder(
        text_model=llama.eval(),
        tokenizer=tokenizer,
        pooled_model=clip.eval(),
        pooled_tokenizer=build_tokenizer(),
        max_length=16,
    )


def tiny_sentence_encoder(seed: int = 0) -> SentenceTextEncoder:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    bert = BertModel(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=64,
        )
    )
    return SentenceTextEncoder(text_model=bert.eval(), tokenizer=tokenizer, max_length=16)


def build_tiny_pipeline(text: str = "llama_clip", seed: int = 0) -> VideoEditPipeline:
    """A whole random pipeline that edits a 64x64, 9-frame clip on a CPU in about a second."""
    encoder = tiny_llama_clip_encoder(seed) if text == "llama_clip" else tiny_sentence_encoder(seed)
    return VideoEditPipeline(
        transformer=tiny_transformer(encoder.states_dim, encoder.pooled_dim, seed),
        vae=tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=encoder,
        defaults=TINY_DEFAULTS.to_dict(),
    )


def pair_record(record_id: str, source: Path, target: Path, instruction: str, seconds: float = 1.5) -> dict:
    """A manifest record for two whole short clips."""
    from training.curation.manifest import clip

    return {"id": record_id, "source": clip(source, 0.0, seconds), "target": clip(target, 0.0, seconds),
            "instruction": instruction, "edit_type": "change", "mask": None, "scores": {}, "provenance": {},
            "stages": {}}  # fmt: skip


def save_tiny_pipeline(path: Path, text: str = "llama_clip") -> Path:
    build_tiny_pipeline(text).save_pretrained(path)
    return path


def save_tiny_hunyuan_base(path: Path, text_dim: int = 32, pooled_dim: int = 16) -> Path:
    """A diffusers-format HunyuanVideo folder of tiny random parts, as `HunyuanVideoPipeline` saves it."""
    from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    vocab = len(build_tokenizer())
    llama = LlamaModel(
        LlamaConfig(vocab_size=vocab, hidden_size=text_dim, intermediate_size=64, num_hidden_layers=3,
                    num_attention_heads=2, num_key_value_heads=2, pad_token_id=0)
    )  # fmt: skip
    clip = CLIPTextModel(
        CLIPTextConfig(vocab_size=vocab, hidden_size=pooled_dim, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
                       eos_token_id=3)
    )  # fmt: skip
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=12, num_layers=1, num_single_layers=1,
        num_refiner_layers=1, text_embed_dim=text_dim, pooled_projection_dim=pooled_dim, rope_axes_dim=(4, 4, 4),
    )  # fmt: skip
    HunyuanVideoPipeline(
        transformer=transformer,
        vae=tiny_vae(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=llama,
        tokenizer=build_tokenizer(),
        text_encoder_2=clip,
        tokenizer_2=build_tokenizer(),
    ).save_pretrained(path)
    return path
