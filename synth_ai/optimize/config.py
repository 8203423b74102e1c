"""The published prompt-learning TOML (`[prompt_learning]`, synth-ai 0.2.x), validated strictly.

The field names follow the published parser (`synth_ai/api/train/configs/prompt_learning.py`
in the 0.2.24 wheel), nested sections and the flat legacy keys it accepted alike. Unlike it,
an unknown key, a wrong type or a non-finite number is refused by name: a typo in a budget
must not run an optimization with the default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .prompt import InitialPrompt, PromptMessage

MAX_SEEDS = 100_000
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
REFLECTION_PLACEHOLDERS = ("<curr_param>", "<side_info>")
"""What gepa's reflection template must contain (the current text, the feedback)."""


class ConfigError(ValueError):
    """A config refused: one line naming the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MessagePattern(Strict):
    role: str = Field(min_length=1, max_length=64)
    pattern: str = Field(max_length=100_000)
    order: int = Field(default=0, ge=0, le=10_000)


class InitialPromptSection(Strict):
    id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    messages: list[MessagePattern] = Field(min_length=1, max_length=64)
    wildcards: dict[str, str] = Field(default_factory=dict, max_length=64)

    def build(self) -> InitialPrompt:
        """The prompt model the interceptor matches with; ValueError naming what is wrong."""
        return InitialPrompt(
            [PromptMessage(m.role, m.pattern, m.order) for m in self.messages], self.wildcards
        )

    @model_validator(mode="after")
    def _well_formed(self) -> InitialPromptSection:
        self.build()
        return self


class PolicySection(Strict):
    model: str = Field(min_length=1, max_length=256)
    provider: str = Field(min_length=1, max_length=64)
    inference_url: str = Field(max_length=2048, pattern=r"^https?://\S+$")
    """The real policy endpoint (OpenAI-compatible); the interceptor forwards to it."""
    inference_mode: str | None = Field(default=None, max_length=64)
    temperature: float = Field(default=0.0, ge=0, le=10)
    max_completion_tokens: int = Field(default=512, ge=1, le=1_000_000)
    policy_name: str | None = Field(default=None, max_length=256)


class RolloutSection(Strict):
    budget: int = Field(ge=1, le=10_000_000)
    """Real `/rollout` calls the search may make (the final test scoring comes on top)."""
    max_concurrent: int = Field(default=20, ge=1, le=1024)
    minibatch_size: int = Field(default=8, ge=1, le=10_000)


class EvaluationSection(Strict):
    seeds: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS)
    validation_seeds: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS)
    test_pool: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS)


class MutationSection(Strict):
    llm_model: str = Field(min_length=1, max_length=256)
    llm_inference_url: str = Field(max_length=2048, pattern=r"^https?://\S+$")
    llm_provider: str | None = Field(default=None, max_length=64)
    prompt: str | None = Field(default=None, max_length=100_000)
    """gepa's reflection template; must hold `<curr_param>` and `<side_info>`."""

    @model_validator(mode="after")
    def _placeholders(self) -> MutationSection:
        missing = [p for p in REFLECTION_PLACEHOLDERS if self.prompt and p not in self.prompt]
        if missing:
            raise ValueError(f"prompt must contain {' and '.join(missing)}")
        return self


class Price(Strict):
    input_per_million: float = Field(ge=0, le=1_000_000)
    output_per_million: float = Field(ge=0, le=1_000_000)


class TokenSection(Strict):
    max_limit: int | None = Field(default=None, ge=1, le=10**15)
    """Tokens (policy and reflection together) after which the run stops with its best."""
    max_spend_usd: float | None = Field(default=None, gt=0, le=10**9)
    counting_model: str | None = Field(default=None, max_length=256)
    enforce_pattern_limit: bool | None = None
    prices: dict[str, Price] = Field(default_factory=dict, max_length=256)
    """USD per million tokens by model, added to (and overriding) the built-in table."""


FLAT_KEYS: dict[str, tuple[str, str]] = {
    "rollout_budget": ("rollout", "budget"),
    "max_concurrent_rollouts": ("rollout", "max_concurrent"),
    "minibatch_size": ("rollout", "minibatch_size"),
    "evaluation_seeds": ("evaluation", "seeds"),
    "validation_seeds": ("evaluation", "validation_seeds"),
    "test_pool": ("evaluation", "test_pool"),
    "mutation_llm_model": ("mutation", "llm_model"),
    "mutation_llm_provider": ("mutation", "llm_provider"),
    "mutation_llm_inference_url": ("mutation", "llm_inference_url"),
    "mutation_prompt": ("mutation", "prompt"),
    "max_token_limit": ("token", "max_limit"),
    "token_counting_model": ("token", "counting_model"),
    "enforce_pattern_token_limit": ("token", "enforce_pattern_limit"),
    "max_spend_usd": ("token", "max_spend_usd"),
}
"""The published format's flat legacy keys of `[prompt_learning.gepa]` and where they go; a
nested value wins over a flat one, as the published parser had it."""


SEARCH_SETTINGS = (
    "population",
    "archive",
    "modules",
    "metaprompt",
    "initial_population_size",
    "num_generations",
    "children_per_generation",
    "crossover_rate",
    "selection_pressure",
    "patience_generations",
    "archive_size",
    "pareto_set_size",
    "pareto_eps",
    "feedback_fraction",
    "mutation_rate",
    "validation_pool",
    "validation_top_k",
)
"""Published keys of the hosted optimizer's search that the `gepa` library has no setting
for: refused by name rather than silently ignored (`mutation.prompt` replaces `metaprompt`)."""
NESTED_SEARCH_SETTINGS = {
    "mutation": ("rate",),
    "evaluation": ("validation_pool", "validation_top_k"),
}


def refuse_search_settings(data: dict[str, Any]) -> None:
    named = [key for key in SEARCH_SETTINGS if key in data]
    for section, keys in NESTED_SEARCH_SETTINGS.items():
        inner = data.get(section)
        if isinstance(inner, dict):
            named += [f"{section}.{key}" for key in keys if key in inner]
    if named:
        raise ValueError(
            f"{named[0]} is a setting of the hosted optimizer that local GEPA does not have; "
            "remove it"
        )


class GepaSection(Strict):
    env_name: str | None = Field(default=None, max_length=256)
    env_config: dict[str, Any] | None = None
    rng_seed: int = Field(default=0, ge=0, le=2**32 - 1)
    proposer_type: str | None = Field(default=None, max_length=64)
    rollout: RolloutSection
    evaluation: EvaluationSection
    mutation: MutationSection
    token: TokenSection = Field(default_factory=TokenSection)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        refuse_search_settings(data)
        nested = {key: value for key, value in data.items() if key not in FLAT_KEYS}
        for key, (section, field) in FLAT_KEYS.items():
            if key not in data:
                continue
            target = nested.setdefault(section, {})
            if isinstance(target, dict):
                nested[section] = {field: data[key], **target}
        return nested

    @model_validator(mode="after")
    def _pools(self) -> GepaSection:
        evaluation = self.evaluation
        for name in ("seeds", "validation_seeds", "test_pool"):
            pool = getattr(evaluation, name)
            if len(set(pool)) != len(pool):
                raise ValueError(f"evaluation.{name} lists a seed twice")
        seen = set(evaluation.seeds) | set(evaluation.validation_seeds)
        if seen & set(evaluation.test_pool):
            raise ValueError(
                "evaluation.test_pool must not share seeds with seeds or validation_seeds: "
                "the search never sees the test pool"
            )
        if self.rollout.budget < len(evaluation.validation_seeds):
            raise ValueError(
                f"rollout.budget ({self.rollout.budget}) must cover one validation pass "
                f"({len(evaluation.validation_seeds)} validation_seeds)"
            )
        return self


class PromptLearningSection(Strict):
    algorithm: Literal["gepa"]
    task_app_url: str = Field(min_length=1, max_length=2048)
    """A URL, or an app reference (`app.py`, `module:attr`, a registered name)."""
    task_app_api_key: str | None = Field(default=None, max_length=4096, repr=False)
    task_app_id: str | None = Field(default=None, max_length=256)
    env_config: dict[str, Any] = Field(default_factory=dict)
    results_folder: str | None = Field(default=None, max_length=4096)
    delivery: Literal["interceptor", "prompt_template"] = "interceptor"
    """How a candidate reaches the app: the interceptor rewrites the app's messages (any app),
    or, for apps declaring `supports_prompt_template`, `policy.config.prompt_template` carries
    it and the interceptor only records."""
    initial_prompt: InitialPromptSection
    policy: PolicySection
    gepa: GepaSection

    @model_validator(mode="before")
    @classmethod
    def _refuse_mipro(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("algorithm") == "mipro" or "mipro" in data):
            raise ValueError('MIPRO is not supported here; set algorithm = "gepa"')
        return data


class OptimizeConfig(Strict):
    """The whole file: one `[prompt_learning]` table."""

    prompt_learning: PromptLearningSection


def one_line(exc: ValidationError, root: str = "") -> str:
    """The first refusal as `key.path: reason` (never the refused value: it may be a key)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(part) for part in error["loc"])
    where = ".".join(part for part in (root, loc) if part) or "config"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {message}"


def parse_config(data: dict[str, Any]) -> OptimizeConfig:
    """A parsed TOML document as a config, or `ConfigError` naming the first bad key."""
    try:
        return OptimizeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None


def load_config(path: Path) -> OptimizeConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML ({exc})") from None
    return parse_config(data)
