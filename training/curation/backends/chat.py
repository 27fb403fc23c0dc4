"""A describer over an OpenAI-compatible `/chat/completions` endpoint that takes images (vLLM, SGLang, TGI, ...).

Each request is one user turn: the sampled frames as `image_url` parts holding base64 data URLs, with short text
labels, then the filled prompt file; temperature 0. Connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff; any other HTTP error, or a reply that cannot be used, is a `BackendReplyError`.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Sequence

import cv2
import httpx
import numpy as np

from .base import BackendConfig, BackendReplyError
from .replies import Part, PromptedDescriber

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {"jpeg": (".jpg", "image/jpeg"), "png": (".png", "image/png")}
MAX_BACKOFF_S = 30.0


def encode_frame(frame: np.ndarray, image_format: str = "jpeg", jpeg_quality: int = 90) -> str:
    """One RGB frame as a `data:` URL."""
    extension, mime = IMAGE_FORMATS[image_format]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpeg" else []
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode a frame of shape {frame.shape} as {image_format}")
    return f"data:{mime};base64,{base64.b64encode(buffer.tobytes()).decode('ascii')}"


def reply_text(data: object, source: str) -> str:
    """The assistant's text in a chat-completions response body."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise BackendReplyError(f"{source}: response has no choices[0].message: {str(data)[:200]!r}") from None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        # Some servers return content as parts, like the request.
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        refusal = message.get("refusal") if isinstance(message, dict) else None
        detail = f" (refusal: {refusal!r})" if refusal else ""
        raise BackendReplyError(f"{source}: empty reply{detail}, finish_reason={choice.get('finish_reason')!r}")
    if choice.get("finish_reason") == "length":
        logger.debug("%s: reply cut at the token limit", source)
    return content


class ChatDescriber(PromptedDescriber):
    """`Describer` over a chat endpoint: `config.url` is the base URL (`http://host:port/v1`), `config.model` the name.

    retries: extra attempts after a transient failure; backoff: seconds before the first retry, doubled each time.
    max_tokens: the reply's token limit (None leaves it to the server).
    """

    def __init__(
        self,
        config: BackendConfig,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        max_tokens: int | None = 512,
        image_format: str = "jpeg",
        jpeg_quality: int = 90,
    ) -> None:
        if not config.url or not config.url.startswith(("http://", "https://")):
            raise ValueError(f"the chat backend needs config.url as http(s)://host:port/v1, got {config.url!r}")
        if not config.model:
            raise ValueError("the chat backend needs config.model, the model name the endpoint serves")
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
        super().__init__(config, name=f"chat model {config.model!r} at {config.url}")
        self.endpoint = config.url.rstrip("/") + "/chat/completions"
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self._client: httpx.Client | None = None
        self._warned_no_key = False

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.config.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> dict:
        # An open client cannot cross into a worker process; each process opens its own.
        state = self.__dict__.copy()
        state["_client"] = None
        return state

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
            elif not self._warned_no_key:
                logger.warning("%s: $%s is not set; sending no API key", self.name, self.config.api_key_env)
                self._warned_no_key = True
        return headers

    def content(self, parts: Sequence[Part]) -> list[dict]:
        content = []
        for part in parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                url = encode_frame(part, self.image_format, self.jpeg_quality)
                content.append({"type": "image_url", "image_url": {"url": url}})
        return content

    def payload(self, parts: Sequence[Part]) -> dict:
        payload = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": self.content(parts)}],
            "temperature": 0,
        }
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        return payload

    def ask(self, parts: Sequence[Part]) -> str:
        return reply_text(self.post(self.payload(parts)), self.name)

    def post(self, payload: dict) -> object:
        """The decoded JSON body of a successful response, retrying what may succeed on a second try."""
        attempts = self.retries + 1
        failure = ""
        for attempt in range(attempts):
            wait = self.backoff * 2**attempt
            try:
                response = self.client.post(self.endpoint, json=payload, headers=self.headers())
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                status = response.status_code
                if status in (408, 429) or status >= 500:
                    failure = f"HTTP {status}: {response.text[:200]!r}"
                    wait = max(wait, _retry_after(response))
                elif status >= 400:
                    detail = response.text[:500]
                    raise BackendReplyError(f"{self.name}: HTTP {status} from {self.endpoint}: {detail!r}")
                else:
                    try:
                        return response.json()
                    except ValueError:
                        raise BackendReplyError(
                            f"{self.name}: HTTP {status} with a body that is not JSON: {response.text[:200]!r}"
                        ) from None
            if attempt + 1 < attempts:
                wait = min(wait, MAX_BACKOFF_S)
                logger.warning("%s: %s; retrying in %.1f s (%d/%d)", self.name, failure, wait, attempt + 1, attempts)
                time.sleep(wait)
        raise BackendReplyError(f"{self.name}: {self.endpoint} failed after {attempts} attempts: {failure}")


def _retry_after(response: httpx.Response) -> float:
    """The server's Retry-After in seconds, when it gives a number."""
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0
