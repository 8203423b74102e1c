"""Tokens an optimization uses (the policy's, through the interceptor, and reflection's), their
price, and the limits (`token.max_limit`, `token.max_spend_usd`) that stop a run with its best.

Prices are USD per million tokens, input and output, from the vendors' public price lists; a
config extends or overrides them (`[prompt_learning.gepa.token.prices]`). A model with no price
counts tokens only, and the summary says so rather than reporting a spend of 0.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "llama-3.3-70b-versatile": (0.59, 0.79),
    "llama-3.1-8b-instant": (0.05, 0.08),
}
"""model -> (input, output) USD per million tokens."""
SOURCES = ("policy", "reflection")
CARRIED = "(before resume)"
"""The model name under which a resumed run keeps what it carried over (priced apart)."""


def usage_counts(usage: Any) -> tuple[int, int]:
    """(prompt, completion) tokens from an OpenAI `usage` object; 0 for what is missing or
    not a count (an endpoint's answer is not trusted to be well formed)."""
    if not isinstance(usage, Mapping):
        return 0, 0

    def count(name: str) -> int:
        value = usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return 0
        return min(value, 10**12)

    return count("prompt_tokens"), count("completion_tokens")


class TokenMeter:
    """Counts tokens by source and model from any thread, and says when a limit is passed."""

    def __init__(
        self,
        *,
        prices: Mapping[str, tuple[float, float]] | None = None,
        max_tokens: int | None = None,
        max_spend_usd: float | None = None,
    ) -> None:
        self.prices = {**PRICES, **(prices or {})}
        self.max_tokens = max_tokens
        self.max_spend_usd = max_spend_usd
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._carried_spend = 0.0

    def add(self, source: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            counts = self._counts.setdefault((source, model), [0, 0])
            counts[0] += prompt_tokens
            counts[1] += completion_tokens

    def add_usage(self, source: str, model: str, usage: Any) -> None:
        self.add(source, model, *usage_counts(usage))

    @property
    def total(self) -> int:
        with self._lock:
            return sum(p + c for p, c in self._counts.values())

    def unpriced(self) -> list[str]:
        with self._lock:
            models = {model for _, model in self._counts}
        return sorted(models - set(self.prices) - {CARRIED})

    def spend_usd(self) -> float:
        """The spend of the priced models (see `unpriced` for the rest)."""
        with self._lock:
            items = list(self._counts.items())
        spend = self._carried_spend
        for (_, model), (prompt, completion) in items:
            if model in self.prices:
                per_in, per_out = self.prices[model]
                spend += (prompt * per_in + completion * per_out) / 1_000_000
        return spend

    def exceeded(self) -> str | None:
        """Why the run must stop now, or None."""
        if self.max_tokens is not None and self.total >= self.max_tokens:
            return f"token limit reached ({self.total} of {self.max_tokens})"
        if self.max_spend_usd is not None and self.spend_usd() >= self.max_spend_usd:
            return f"spend limit reached (${self.spend_usd():.4f} of ${self.max_spend_usd:g})"
        return None

    def snapshot(self) -> dict[str, Any]:
        """Tokens per source, the total, spend, the limits, and the models with no price."""
        with self._lock:
            items = list(self._counts.items())
        by_source = {source: {"prompt": 0, "completion": 0} for source in SOURCES}
        for (source, _), (prompt, completion) in items:
            entry = by_source.setdefault(source, {"prompt": 0, "completion": 0})
            entry["prompt"] += prompt
            entry["completion"] += completion
        return {
            **by_source,
            "total": sum(p + c for p, c in (counts for _, counts in items)),
            "spend_usd": round(self.spend_usd(), 6),
            "unpriced_models": self.unpriced(),
            "max_limit": self.max_tokens,
            "max_spend_usd": self.max_spend_usd,
        }

    def carry(self, snapshot: Mapping[str, Any]) -> None:
        """Start from a stopped run's counts and spend (its `snapshot`), so a resumed run's
        limits count what was spent before."""
        for source in SOURCES:
            entry = snapshot.get(source)
            if isinstance(entry, Mapping):
                prompt, completion = usage_counts(
                    {
                        "prompt_tokens": entry.get("prompt"),
                        "completion_tokens": entry.get("completion"),
                    }
                )
                self.add(source, CARRIED, prompt, completion)
        spend = snapshot.get("spend_usd")
        if isinstance(spend, int | float) and not isinstance(spend, bool) and spend >= 0:
            self._carried_spend = min(float(spend), 1e12)
