"""Seed specs on the command line: `0-49`, `1,5,9`, `0-9,20-29`."""

from __future__ import annotations

MAX_SEEDS = 100_000


def parse_seeds(spec: str) -> list[int]:
    """The seeds a spec names, in order, without duplicates; `ValueError` says what is wrong."""
    seeds: list[int] = []
    seen: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        start, sep, end = part.partition("-") if not part.startswith("-") else (part, "", "")
        try:
            low = int(start)
            high = int(end) if sep else low
        except ValueError:
            raise ValueError(f"{part!r} is not a seed or a range like 0-49") from None
        if high < low:
            raise ValueError(f"range {part!r} runs backwards")
        if len(seeds) + (high - low + 1) > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS} seeds")
        for seed in range(low, high + 1):
            if seed not in seen:
                seen.add(seed)
                seeds.append(seed)
    if not seeds:
        raise ValueError("no seeds given")
    return seeds
