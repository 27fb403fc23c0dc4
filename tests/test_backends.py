"""Curation backends: the chat describer against a local HTTP server, the local models on tiny random weights.

The chat tests talk only to a server on 127.0.0.1 started here, which serves canned `/v1/chat/completions` replies
and records what it was sent. The local-model tests build tiny random models offline (tokenizers trained here), save
them to a temporary folder and load them through the factories, as a run would. Random weights answer garbage: the
describer tests check the plumbing, and that garbage is a `BackendReplyError` (a dropped record), not a crash.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.curation.backends import (
    BackendConfig,
    BackendReplyError,
    Change,
    build_describer,
    build_inpainter,
    build_segmenter,
)
from training.curation.backends.base import PROMPTS_DIR, load_prompt
from training.curation.backends.chat import ChatDescriber
from training.curation.backends.replies import extract_json_object, parse_caption, parse_change, parse_judge

os.environ.setdefault("HF_HUB_OFFLINE", "1")

INSTRUCTION = "replace the dog with a cat"


def completion(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


class ChatServer:
    """A local chat endpoint: answers each POST with the next canned (status, body), records every request."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, object]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                status, payload = server.replies.pop(0) if server.replies else (500, "no canned reply left")
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reply(self, *replies: tuple[int, object]) -> None:
        self.replies.extend(replies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture
def chat(server):
    server.replies.clear()
    server.requests.clear()
    describers = []

    def make(api_key_env: str | None = None, **kwargs) -> ChatDescriber:
        config = BackendConfig(
            kind="chat", model="tiny-vlm", url=server.url, api_key_env=api_key_env, max_frames=3, timeout=5.0
        )
        describer = ChatDescriber(config, backoff=0.01, **kwargs)
        describers.append(describer)
        return describer

    yield make
    for describer in describers:
        describer.close()


@pytest.fixture(scope="module")
def clips() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, size=(8, 24, 32, 3), dtype=np.uint8)
    target = source.copy()
    target[:, 8:16, 8:20] = (200, 30, 30)
    return source, target


def image_parts(request: dict) -> list[dict]:
    return [part for part in request["body"]["messages"][0]["content"] if part["type"] == "image_url"]


def text_parts(request: dict) -> str:
    return "\n".join(part["text"] for part in request["body"]["messages"][0]["content"] if part["type"] == "text")


def decode_data_url(url: str) -> np.ndarray:
    header, data = url.split(",", 1)
    assert header in ("data:image/jpeg;base64", "data:image/png;base64")
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)


# The chat backend against a local endpoint.


def test_chat_caption_request(server, chat, clips, monkeypatch):
    monkeypatch.setenv("TINY_VLM_KEY", "secret-key")
    describer = chat(api_key_env="TINY_VLM_KEY", image_format="png")
    server.reply((200, completion('Caption: "A red square moves over a field of noise."')))

    assert describer.caption(clips[0]) == "A red square moves over a field of noise."

    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer secret-key"
    body = request["body"]
    assert body["model"] == "tiny-vlm"
    assert body["temperature"] == 0
    images = image_parts(request)
    assert len(images) == 3  # max_frames of an 8-frame clip
    # PNG is lossless: the first sampled frame arrives exactly, in RGB order.
    first = decode_data_url(images[0]["image_url"]["url"])
    np.testing.assert_array_equal(cv2.cvtColor(first, cv2.COLOR_BGR2RGB), clips[0][0])
    assert load_prompt(describer.config, "caption").format(num_frames=3) in text_parts(request)


def test_chat_change_fenced_json_and_key_case(server, chat, clips):
    describer = chat()
    reply = 'Sure! Here it is:\n```json\n{"Edit_Type": "Recolor", "Instruction": " make the  square red "}\n```'
    server.reply((200, completion(reply)))

    assert describer.describe_change(*clips) == Change("recolour", "make the square red")

    (request,) = server.requests
    assert len(image_parts(request)) == 6  # three frames of each clip
    text = text_parts(request)
    assert text.index("Clip A") < text.index("Clip B")
    assert '{"edit_type": "none"}' in text  # the template's escaped braces came out as JSON


def test_chat_change_none(server, chat, clips):
    describer = chat()
    server.reply((200, completion('The two clips look the same to me. {"edit_type": "none"} That is all.')))
    assert describer.describe_change(clips[0], clips[0]) is None


def test_chat_judge_prose_string_numbers(server, chat, clips):
    describer = chat()
    reply = (
        'My assessment: {"Prompt Following": "2", "edit_quality": 3.0, "Background-Consistency": "1", '
        '"reason": "the dog is only partly a cat"} Hope this helps.'
    )
    server.reply((200, completion(reply)))

    scores = describer.judge(*clips, INSTRUCTION)

    assert scores == {"prompt_following": 2, "edit_quality": 3, "background_consistency": 1}
    assert f'"{INSTRUCTION}"' in text_parts(server.requests[0])


@pytest.mark.parametrize(
    "reply",
    [
        "I cannot tell what changed between these clips.",
        '{"edit_type": "teleport", "instruction": "beam it up"}',
        '{"edit_type": "replace"}',
        "{not json at all}",
    ],
)
def test_chat_unusable_change_reply(server, chat, clips, reply):
    describer = chat()
    server.reply((200, completion(reply)))
    with pytest.raises(BackendReplyError):
        describer.describe_change(*clips)


@pytest.mark.parametrize(
    "reply",
    [
        '{"prompt_following": 4, "edit_quality": 2, "background_consistency": 3}',
        '{"prompt_following": -1, "edit_quality": 2, "background_consistency": 3}',
        '{"prompt_following": 2, "edit_quality": 2}',
        '{"prompt_following": "good", "edit_quality": 2, "background_consistency": 3}',
        "Looks great, 3 out of 3.",
    ],
)
def test_chat_unusable_judge_reply(server, chat, clips, reply):
    describer = chat()
    server.reply((200, completion(reply)))
    with pytest.raises(BackendReplyError):
        describer.judge(*clips, INSTRUCTION)


def test_chat_retries_transient_errors(server, chat, clips):
    describer = chat(retries=3)
    server.reply((500, "overloaded"), (429, {"error": "slow down"}), (200, completion("A red square on noise.")))

    assert describer.caption(clips[0]) == "A red square on noise."
    assert len(server.requests) == 3
    assert server.requests[0]["body"] == server.requests[2]["body"]


def test_chat_gives_up_after_retries(server, chat, clips):
    describer = chat(retries=1)
    server.reply((503, "down"), (503, "still down"), (200, completion("never asked for")))
    with pytest.raises(BackendReplyError, match=r"2 attempts.*503"):
        describer.caption(clips[0])
    assert len(server.requests) == 2


def test_chat_client_error_is_not_retried(server, chat, clips):
    describer = chat(retries=3)
    server.reply((400, {"error": {"message": "model does not take images"}}))
    with pytest.raises(BackendReplyError, match=r"HTTP 400.*does not take images"):
        describer.caption(clips[0])
    assert len(server.requests) == 1


@pytest.mark.parametrize("body", [{"result": "A cat."}, {"choices": []}, completion("   "), "plain text, not JSON"])
def test_chat_malformed_response(server, chat, clips, body):
    describer = chat()
    server.reply((200, body))
    with pytest.raises(BackendReplyError):
        describer.caption(clips[0])


def test_chat_unreachable(clips):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = BackendConfig(kind="chat", model="tiny-vlm", url=f"http://127.0.0.1:{port}/v1", timeout=2.0)
    describer = ChatDescriber(config, retries=1, backoff=0.01)
    with pytest.raises(BackendReplyError, match=r"2 attempts.*ConnectError"):
        describer.caption(clips[0])
    describer.close()


def test_chat_needs_url_and_model():
    with pytest.raises(ValueError, match="url"):
        ChatDescriber(BackendConfig(kind="chat", model="m"))
    with pytest.raises(ValueError, match="model"):
        ChatDescriber(BackendConfig(kind="chat", url="http://127.0.0.1:1/v1"))


# Reply parsing on its own.


@pytest.mark.parametrize(
    "reply",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '```\n{"A": 1,}\n```',
        'Answer: {"a": 1} and then {"b": 2}',
        "Here: “{“a”: 1}”",
        'Set {x} aside; the answer is {"a": 1}.',
    ],
)
def test_extract_json_object(reply):
    assert extract_json_object(reply, "test") == {"a": 1}


def test_parse_replies():
    assert parse_caption("```\nA cat sleeps on a sofa.\n```", "t") == "A cat sleeps on a sofa."
    assert parse_caption('{"caption": "A cat sleeps."}', "t") == "A cat sleeps."
    assert parse_change('{"EDIT_TYPE": null}', "t") is None
    assert parse_change('{"edit_type": "No change"}', "t") is None
    assert parse_judge(
        '{"scores": {"prompt_following": "3/3", "edit_quality": 1, "background_consistency": 0}}', "t"
    ) == {
        "prompt_following": 3,
        "edit_quality": 1,
        "background_consistency": 0,
    }
    for garbage in ("", "   ", "12 34 !!", "x" * 2000, '{"edit_type": "none"}'):
        with pytest.raises(BackendReplyError):
            parse_caption(garbage, "t")


def test_prompt_files_examples_parse():
    config = BackendConfig()
    assert "{num_frames}" in load_prompt(config, "caption")
    change = load_prompt(config, "change").format(num_source_frames=4, num_target_frames=4)
    judge = load_prompt(config, "judge").format(num_source_frames=4, num_edited_frames=4, instruction=INSTRUCTION)
    # The escaped braces of the examples come out as JSON the parsers accept.
    assert parse_change(change, "change.txt") == Change("replace", INSTRUCTION)
    assert parse_judge(judge, "judge.txt") == {"prompt_following": 3, "edit_quality": 2, "background_consistency": 3}


# Factories.


def test_factories_dispatch(server):
    describer = build_describer(BackendConfig(kind="chat", model="m", url=server.url))
    assert isinstance(describer, ChatDescriber)
    describer.close()
    with pytest.raises(ValueError, match="'chat' cannot be a segmenter"):
        build_segmenter(BackendConfig(kind="chat", model="m", url=server.url))
    with pytest.raises(ValueError, match="'chat' cannot be a inpainter"):
        build_inpainter(BackendConfig(kind="chat"))
    for build in (build_describer, build_segmenter, build_inpainter):
        with pytest.raises(ValueError, match="unknown backend kind 'magic'"):
            build(BackendConfig(kind="magic"))
    with pytest.raises(ValueError, match="local model folder"):
        build_segmenter(BackendConfig(kind="transformers", model="/nonexistent/segmenter"))


def test_factories_world():
    world = pytest.importorskip("training.curation.backends.world")
    config = BackendConfig(kind="world")
    assert isinstance(build_describer(config), world.WorldDescriber)
    assert isinstance(build_segmenter(config), world.WorldSegmenter)
    assert isinstance(build_inpainter(config), world.WorldInpainter)


# Local models on tiny random weights.


def train_tokenizer(texts: list[str], specials: list[str]):
    """A word-level fast tokenizer over `texts`, so that decoded prompts read back as words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    return tokenizer


LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image> {% else %}{{ part['text'] }} "
    "{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    """A tiny random LLaVA (CLIP vision tower, Llama text model) and its processor, saved as a local folder."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    texts = [path.read_text() for path in sorted(PROMPTS_DIR.glob("*.txt"))]
    texts += ["Frames of the clip , in order : Clip A B Source Edited", INSTRUCTION, "user assistant"]
    specials = ["[PAD]", "[UNK]", "<s>", "</s>", "<image>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(texts, specials),
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=LLAVA_TEMPLATE,
        image_token="<image>",
    )
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-llava"
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir):
    from training.curation.backends.local_vlm import LocalVLMDescriber

    describer = build_describer(BackendConfig(kind="transformers", model=str(tiny_vlm_dir), max_frames=2))
    assert isinstance(describer, LocalVLMDescriber)
    describer.max_new_tokens = 12
    return describer


def test_local_vlm_prompt_plumbing(vlm, clips):
    parts = vlm.judge_request(*clips, INSTRUCTION)
    (message,) = vlm.messages(parts)
    kinds = [part["type"] for part in message["content"]]
    assert kinds.count("image") == 4  # two sampled frames of each clip
    assert kinds.index("image") < kinds.index("text", kinds.index("image"))

    inputs = vlm.inputs(parts)
    assert tuple(inputs["pixel_values"].shape) == (4, 3, 16, 16)
    image_token = vlm.model.config.image_token_id
    assert int((inputs["input_ids"] == image_token).sum()) == 4 * (16 // 8) ** 2
    prompt = vlm.processor.decode(inputs["input_ids"][0])
    assert INSTRUCTION in prompt
    assert "Score the edit on each criterion" in prompt


def test_local_vlm_generates_and_drops_garbage(vlm, clips):
    reply = vlm.ask(vlm.caption_request(clips[0]))
    assert isinstance(reply, str)
    # Random weights write random words: a caption may pass as text, JSON replies cannot.
    try:
        caption = vlm.caption(clips[0])
    except BackendReplyError:
        caption = None
    assert caption is None or caption.strip()
    with pytest.raises(BackendReplyError):
        vlm.describe_change(*clips)
    with pytest.raises(BackendReplyError):
        vlm.judge(*clips, INSTRUCTION)


def test_local_vlm_reads_replies_like_chat(vlm, clips, monkeypatch):
    reply = '```json\n{"edit_type": "replace", "instruction": "replace the dog with a cat"}\n```'
    monkeypatch.setattr(vlm.processor, "batch_decode", lambda *args, **kwargs: [reply])
    assert vlm.describe_change(*clips) == Change("replace", INSTRUCTION)


@pytest.fixture(scope="module")
def tiny_segformer_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    labels = {0: "background", 1: "dog", 2: "cat"}
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        id2label=labels,
        label2id={name: index for index, name in labels.items()},
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-segformer"
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_mask2former_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    # 64 pixels keep Swin's last stage above 1x1, which the pixel decoder's GroupNorm rejects for a single image.
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=32,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_queries=5,
        id2label={0: "dog", 1: "cat"},
        label2id={"dog": 0, "cat": 1},
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-mask2former"
    Mask2FormerForUniversalSegmentation(config).save_pretrained(folder)
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def test_local_segmenter_semantic(tiny_segformer_dir, clips):
    from training.curation.backends.local_segmenter import LocalSegmenter

    config = BackendConfig(kind="transformers", model=str(tiny_segformer_dir))
    segmenter = build_segmenter(config)
    assert isinstance(segmenter, LocalSegmenter) and not segmenter.universal
    frames = clips[1][:5]

    objects = segmenter.segment(frames)
    for item in objects:
        assert item.label in ("dog", "cat")
        assert item.mask.dtype == bool and item.mask.shape == frames.shape[:3]
        assert 0.0 <= item.score <= 1.0

    # Without the background filter the per-pixel argmax splits every frame into disjoint class masks.
    everything = LocalSegmenter(config, ignore_labels=(), min_area=0.0, max_side=16, frame_stride=2).segment(frames)
    assert len({item.label for item in everything}) == len(everything)
    coverage = np.sum([item.mask for item in everything], axis=0)
    np.testing.assert_array_equal(coverage, np.ones(frames.shape[:3]))


def test_local_segmenter_universal(tiny_mask2former_dir, clips):
    from training.curation.backends.local_segmenter import LocalSegmenter

    config = BackendConfig(kind="transformers", model=str(tiny_mask2former_dir))
    segmenter = LocalSegmenter(config, threshold=0.0, min_area=0.0, batch_size=2)
    assert segmenter.universal
    frames = clips[1][:3]

    objects = segmenter.segment(frames)

    assert objects, "with threshold 0 every frame has instances"
    assert [item.score for item in objects] == sorted((item.score for item in objects), reverse=True)
    for item in objects:
        assert item.label in ("dog", "cat")
        assert item.mask.dtype == bool and item.mask.shape == frames.shape[:3]
    # An instance segmentation labels each pixel at most once per frame, and tracks never share a frame's pixel.
    assert np.sum([item.mask for item in objects], axis=0).max() <= 1


@pytest.fixture(scope="module")
def tiny_vace_dir(tmp_path_factory) -> Path:
    """A tiny random Wan-VACE pipeline (the component sizes of diffusers' own tests), saved as a local folder."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    backend = train_tokenizer(["a red square moves over noise", INSTRUCTION], ["<pad>", "</s>", "[UNK]"])
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="[UNK]"
    )
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=3,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        vace_layers=[0, 2],
        vace_in_channels=96,
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer,
    )
    folder = tmp_path_factory.mktemp("models") / "tiny-vace"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vace(tiny_vace_dir):
    from training.curation.backends.vace import VaceInpainter

    inpainter = build_inpainter(BackendConfig(kind="transformers", model=str(tiny_vace_dir)))
    assert isinstance(inpainter, VaceInpainter)
    inpainter.num_inference_steps = 2
    inpainter.guidance_scale = 1.0
    return inpainter


@pytest.fixture(scope="module")
def masked_clip() -> tuple[np.ndarray, np.ndarray]:
    """7 frames of 30x44: neither 4k+1 frames nor sides that are multiples of 16."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(7, 30, 44, 3), dtype=np.uint8)
    mask = np.zeros(frames.shape[:3], dtype=bool)
    mask[:, 6:20, 10:30] = True
    return frames, mask


class RecordingPipe:
    """Forwards to a pipeline and keeps the keyword arguments of each call."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self.pipe, name)


def test_vace_inpaint_shapes_and_composite(vace, masked_clip, monkeypatch):
    frames, mask = masked_clip
    recorder = RecordingPipe(vace.pipe)
    monkeypatch.setattr(vace, "pipe", recorder)

    result = vace.inpaint(frames, mask, "a red square moves over noise", seed=0)

    assert result.dtype == np.uint8 and result.shape == frames.shape
    np.testing.assert_array_equal(result[~mask], frames[~mask])
    assert not np.array_equal(result[mask], frames[mask])

    (call,) = recorder.calls
    assert (call["num_frames"], call["height"], call["width"]) == (9, 32, 48)
    assert len(call["video"]) == len(call["mask"]) == 9
    video = np.stack([np.asarray(image) for image in call["video"]])
    sent_mask = np.stack([np.asarray(image) for image in call["mask"]]) > 127
    assert video.shape == (9, 32, 48, 3)
    np.testing.assert_array_equal(sent_mask[:7, :30, :44], mask)
    assert not sent_mask[:, 30:].any() and not sent_mask[:, :, 44:].any()
    np.testing.assert_array_equal(sent_mask[7:], sent_mask[[6, 6]])  # padded frames repeat the last one
    assert (video[sent_mask] == 128).all()
    np.testing.assert_array_equal(video[:7, :30, :44][~mask], frames[~mask])
    assert call["prompt_embeds"].shape == (1, 512, 32) and call["negative_prompt_embeds"] is None


def test_vace_seeded_and_guided(vace, masked_clip, monkeypatch):
    frames, mask = masked_clip
    first = vace.inpaint(frames, mask, "a red square", seed=3)
    np.testing.assert_array_equal(vace.inpaint(frames, mask, "a red square", seed=3), first)
    assert not np.array_equal(vace.inpaint(frames, mask, "a red square", seed=4), first)

    monkeypatch.setattr(vace, "guidance_scale", 3.0)
    guided = vace.inpaint(frames, mask, "a red square", seed=3)
    assert guided.shape == frames.shape
    np.testing.assert_array_equal(guided[~mask], frames[~mask])


def test_vace_large_clip_scaled_down_and_back(vace, monkeypatch):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(5, 40, 60, 3), dtype=np.uint8)
    mask = np.zeros(frames.shape[:3], dtype=bool)
    mask[:, 10:30, 20:40] = True
    recorder = RecordingPipe(vace.pipe)
    monkeypatch.setattr(vace, "pipe", recorder)
    monkeypatch.setattr(vace, "max_area", 600)

    result = vace.inpaint(frames, mask, "a red square", seed=0)

    assert result.shape == frames.shape
    np.testing.assert_array_equal(result[~mask], frames[~mask])
    (call,) = recorder.calls
    assert (call["num_frames"], call["height"], call["width"]) == (5, 32, 32)  # 20x30 padded


def test_vace_empty_mask_is_identity(vace, masked_clip):
    frames, mask = masked_clip
    np.testing.assert_array_equal(vace.inpaint(frames, np.zeros_like(mask), "anything", seed=0), frames)
    with pytest.raises(ValueError, match="mask"):
        vace.inpaint(frames, mask[:, :10], "anything", seed=0)


def test_vace_prompt_encoding_matches_diffusers(vace, monkeypatch):
    import torch
    from diffusers.pipelines.wan import pipeline_wan_vace

    # diffusers' own encoder runs prompts through ftfy, which is not a dependency: stand in an identity.
    class IdentityFtfy:
        @staticmethod
        def fix_text(text: str) -> str:
            return text

    monkeypatch.setattr(pipeline_wan_vace, "ftfy", IdentityFtfy, raising=False)
    text = "  replace the &amp; dog\nwith a   cat "
    expected = vace.pipe._get_t5_prompt_embeds(text, max_sequence_length=512, device=torch.device("cpu"))
    torch.testing.assert_close(vace.encode_prompt(text), expected)
