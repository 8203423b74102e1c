"""Supervised fine-tuning export: OpenAI chat fine-tuning JSONL from recorded LLM calls.

Each line is `{"messages": [...], "tools": [...]}`; assistant tool calls carry `arguments` as a
JSON string, as OpenAI's format requires. Sessions recorded by `synth-ai check` (metadata
`purpose: "check"`) are probes, not training data: left out unless asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synth_ai.batch_writer import BatchWriter

from .models import LLMCallRecord, LLMMessage, SessionTrace

SFT_FILE_NAME = "sft_examples.jsonl"
CHECK_PURPOSE = "check"
"""`metadata.purpose` of a session a conformance check's rollout recorded."""


def is_check(trace: SessionTrace) -> bool:
    return trace.metadata.get("purpose") == CHECK_PURPOSE


def _message(message: LLMMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(message.tool_calls)
        ]
    return out


def sft_example(record: LLMCallRecord) -> dict[str, Any] | None:
    """One training line for an LLM call; None when the call produced no assistant message."""
    outputs = [m for m in record.output_messages if m.role == "assistant"]
    if not outputs or not record.request_messages:
        return None
    example: dict[str, Any] = {
        "messages": [_message(m) for m in record.request_messages] + [_message(outputs[0])]
    }
    if record.tools:
        example["tools"] = record.tools
    return example


def session_examples(trace: SessionTrace, model: str | None = None) -> Iterable[dict[str, Any]]:
    for event in trace.lm_events():
        for record in event.call_records:
            if model is not None and record.model_name != model:
                continue
            example = sft_example(record)
            if example is not None:
                yield example


def write_sft_jsonl(
    traces: Iterable[SessionTrace],
    out_path: str | os.PathLike[str],
    *,
    min_reward: float | None = None,
    model: str | None = None,
    include_checks: bool = False,
) -> int:
    """Stream examples to a file, one session at a time; answers how many lines were written.
    Sessions of conformance checks are skipped unless `include_checks`."""
    count = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for trace in traces:
            if not include_checks and is_check(trace):
                continue
            reward = trace.outcome_reward.total_reward if trace.outcome_reward else None
            if min_reward is not None and (reward is None or reward < min_reward):
                continue
            for example in session_examples(trace, model):
                out.write(json.dumps(example, ensure_ascii=False) + "\n")
                count += 1
    return count


class SFTWriter:
    """Appends one line per LLM call to `<dir>/sft_examples.jsonl` from a background thread.

    Each batch goes to the file in one write, and a write that fails part-way (a full disk)
    is cut back off: the file only ever holds whole lines.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / SFT_FILE_NAME
        self._writer: BatchWriter[dict[str, Any], None] = BatchWriter(
            self._append, name="sft-writer", max_queue=10_000
        )

    def _append(self, examples: list[dict[str, Any]]) -> list[BaseException | None]:
        blob = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        return [None] * len(examples)

    def write(self, record: LLMCallRecord) -> None:
        example = sft_example(record)
        if example is not None:
            self._writer.submit(example)

    @property
    def write_errors(self) -> int:
        return self._writer.errors

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()
