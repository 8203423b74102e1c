"""0.2.24's rubrics: `Rubric`/`Criterion`, loading, blending, scoring and `RubricBundle`.

A `Criterion` is this project's `RubricCriterion` with 0.2.24's `required` flag; a `Rubric`
becomes a `RubricSection` (`to_section`) wherever the contract carries one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from .contracts import RubricCriterion, RubricInfo, RubricSection

AGGREGATIONS = frozenset({"sum", "weighted_sum", "custom", "inherit"})


class Criterion(RubricCriterion):
    """One scoring criterion; weights need not sum to 1."""

    required: bool = False

    @field_validator("weight")
    @classmethod
    def _positive_weight(cls, value: float) -> float:
        if not value > 0:  # NaN too
            raise ValueError("criterion weight must be positive")
        return value


class Rubric(BaseModel):
    """A versioned list of criteria and how their scores combine."""

    version: str
    goal_text: str | None = None
    criteria: list[Criterion] = Field(default_factory=list)
    aggregation: str = "weighted_sum"

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str) -> str:
        if value not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {sorted(AGGREGATIONS)}")
        return value

    @field_validator("criteria")
    @classmethod
    def _unique_ids(cls, criteria: list[Criterion]) -> list[Criterion]:
        seen: set[str] = set()
        for criterion in criteria:
            if criterion.id in seen:
                raise ValueError(f"duplicate criterion id: {criterion.id}")
            seen.add(criterion.id)
        return criteria

    def to_section(self, name: str) -> RubricSection:
        return RubricSection(name=name, criteria=list(self.criteria))


@dataclass(slots=True)
class RubricBundle:
    """The rubrics a task app advertises, as 0.2.24's `TaskAppConfig.rubrics` takes them."""

    outcome: Rubric | None = None
    events: Rubric | None = None

    def to_json(self) -> dict[str, Any] | None:
        """What `/info` answers as `rubrics` (as 0.2.24 does): None when both are unset."""
        if self.outcome is None and self.events is None:
            return None
        return {
            "outcome": self.outcome.model_dump(mode="json") if self.outcome else None,
            "events": self.events.model_dump(mode="json") if self.events else None,
        }

    def to_info(self) -> RubricInfo:
        return RubricInfo(
            outcome=self.outcome.to_section("outcome") if self.outcome else None,
            events=self.events.to_section("events") if self.events else None,
        )


def _parse(text: str, suffix: str | None) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise ValueError("Rubric source is empty")
    if text.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(text, timeout=15, follow_redirects=True)
        response.raise_for_status()
        return _parse(response.text, suffix)
    if suffix not in (".yaml", ".yml"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            if suffix == ".json":
                raise
        else:
            if not isinstance(data, dict):
                raise ValueError("A rubric must be a JSON object")
            return data
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError("PyYAML is required to load YAML rubrics") from exc
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("Rubric YAML must produce a mapping")
    return data


def load_rubric(source: str | Mapping[str, Any] | Rubric | None) -> Rubric | None:
    """A rubric from a file (JSON or YAML), a URL, JSON/YAML text, a mapping or a `Rubric`."""
    if source is None or isinstance(source, Rubric):
        return source
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        if len(source) < 4096 and path.is_file():
            data = _parse(path.read_text(encoding="utf-8"), path.suffix.lower())
        else:
            data = _parse(source, None)
    if {"event", "outcome"} <= data.keys() and not {"version", "goal_text", "criteria"} & set(data):
        raise ValueError(
            "Rubric appears to be in backend judge format (has 'event'/'outcome' keys); task "
            "apps require rubrics with 'version', 'goal_text' and 'criteria' fields."
        )
    return Rubric.model_validate(data)


def _merged_weight(base: Criterion, override: Criterion) -> float:
    if override.weight != 1.0 and base.weight != 1.0:
        return base.weight * override.weight
    return override.weight if override.weight != 1.0 else base.weight


def blend_rubrics(base: Rubric | None, override: Rubric | None) -> Rubric | None:
    """`override`'s criteria over `base`'s (weights multiply when both are set), then the
    rest of `base`'s; `aggregation="inherit"` takes `base`'s."""
    if base is None or override is None:
        return override if base is None else base
    remaining = {criterion.id: criterion for criterion in base.criteria}
    merged: list[Criterion] = []
    for criterion in override.criteria:
        existing = remaining.pop(criterion.id, None)
        if existing is None:
            merged.append(criterion)
            continue
        merged.append(
            Criterion(
                id=criterion.id,
                description=criterion.description or existing.description,
                weight=_merged_weight(existing, criterion),
                required=criterion.required,
            )
        )
    merged.extend(remaining.values())
    aggregation = override.aggregation
    return Rubric(
        version=override.version or base.version,
        goal_text=override.goal_text or base.goal_text,
        criteria=merged,
        aggregation=base.aggregation if aggregation == "inherit" else aggregation,
    )


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _score(criteria: Iterable[Criterion], values: dict[str, float], aggregation: str) -> Any:
    aggregation = "weighted_sum" if aggregation == "inherit" else aggregation
    per_criterion: dict[str, dict[str, Any]] = {}
    total = total_weight = 0.0
    for criterion in criteria:
        score = values.get(criterion.id, 0.0)
        per_criterion[criterion.id] = {
            "score": score,
            "weight": criterion.weight,
            "required": criterion.required,
        }
        if aggregation == "sum":
            total += score
        elif aggregation == "weighted_sum":
            total += score * criterion.weight
            total_weight += criterion.weight
    if aggregation == "weighted_sum" and total_weight > 0:
        total /= total_weight
    return {
        "aggregation": aggregation,
        "score": None if aggregation == "custom" else total,
        "per_criterion": per_criterion,
    }


_UNSCORED: dict[str, Any] = {"aggregation": "none", "score": None, "per_criterion": {}}


def score_events_against_rubric(
    events: list[dict[str, Any]], rubric: Rubric | None
) -> dict[str, Any]:
    """Scores from events carrying `criterion_id` (or `id`, `criterion`) and `score`."""
    if rubric is None:
        return dict(_UNSCORED)
    values: dict[str, float] = {}
    for event in events or []:
        if not isinstance(event, dict):
            continue
        cid = event.get("criterion_id") or event.get("id") or event.get("criterion")
        score = _as_float(event.get("score"))
        if cid and score is not None:
            values[str(cid)] = score
    result: dict[str, Any] = _score(rubric.criteria, values, rubric.aggregation)
    return result


def score_outcome_against_rubric(outcome: dict[str, Any], rubric: Rubric | None) -> dict[str, Any]:
    """Scores from an outcome mapping criterion ids to scores (or nesting them in
    `criteria`)."""
    if rubric is None:
        return dict(_UNSCORED)
    values: dict[str, float] = {}
    if isinstance(outcome, dict):
        nested = outcome.get("criteria")
        for key, value in (nested if isinstance(nested, dict) else outcome).items():
            score = _as_float(value)
            if score is not None:
                values[str(key)] = score
    result: dict[str, Any] = _score(rubric.criteria, values, rubric.aggregation)
    return result


__all__ = [
    "Criterion",
    "Rubric",
    "RubricBundle",
    "blend_rubrics",
    "load_rubric",
    "score_events_against_rubric",
    "score_outcome_against_rubric",
]
