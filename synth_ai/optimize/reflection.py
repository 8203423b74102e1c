"""The reflection model gepa asks for new instructions: an OpenAI-compatible endpoint.

gepa calls it synchronously from the optimizer's thread; the call itself runs on the job's
event loop (`run_coroutine_threadsafe`), through the framework's shared client, so the key
that goes along is the one the credential map binds to the endpoint's host, never one a
config names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from synth_ai.task import chat_completion
from synth_ai.task.inference import SharedHttpClient

from .spend import TokenMeter

REFLECTION_TIMEOUT_S = 120.0
MAX_REFLECTION_TOKENS = 2048


def chat_url(url: str) -> str:
    """A base URL (`.../v1`) or the full chat-completions URL, as the endpoint to POST to."""
    base, sep, query = url.partition("?")
    base = base.rstrip("/")
    if not base.endswith("/chat/completions"):
        base += "/chat/completions"
    return base + sep + query


class ReflectionModel:
    """gepa's `LanguageModel`: a prompt (text or chat messages) in, the answer's text out."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        loop: asyncio.AbstractEventLoop,
        http: SharedHttpClient,
        meter: TokenMeter,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.url = chat_url(url)
        self.on_failure = on_failure
        self.failures = 0
        self.model = model
        self.loop = loop
        self.http = http
        self.meter = meter

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        try:
            return asyncio.run_coroutine_threadsafe(self.complete(messages), self.loop).result()
        except Exception as exc:  # gepa skips the proposal; the run says why
            self.failures += 1
            if self.on_failure is not None:
                self.on_failure(f"reflection failed: {exc}")
            raise

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        payload = {"model": self.model, "messages": messages, "max_tokens": MAX_REFLECTION_TOKENS}
        answer = await chat_completion(
            self.http.get(), self.url, payload, timeout=REFLECTION_TIMEOUT_S
        )
        self.meter.add_usage("reflection", self.model, answer.get("usage"))
        message = answer["choices"][0]["message"]
        content = message.get("content") if isinstance(message, Mapping) else None
        return content if isinstance(content, str) else ""
