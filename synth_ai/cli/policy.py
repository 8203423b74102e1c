"""`synth-ai policy serve --offline`: the offline stand-in policy, for trying apps with no key."""

from __future__ import annotations

import click


@click.group()
def policy() -> None:
    """Policies to roll out with, served locally."""


@policy.command("serve")
@click.option(
    "--offline",
    is_flag=True,
    help="The offline stand-in (no LLM vendor: it solves the math app's problems and echoes "
    "`Say N`; model `offline-prompt-sensitive` slips unless its prompt teaches it, model "
    "`offline-reflection` proposes instructions from feedback); required, so nobody mistakes "
    "it for a model.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of answers made wrong on purpose (deterministic per prompt).",
)
def serve(offline: bool, host: str, port: int, error_rate: float) -> None:
    """Serve an OpenAI-compatible /v1/chat/completions on HOST:PORT."""
    from synth_ai.offline_policy import (
        OFFLINE_MODEL,
        PROMPT_SENSITIVE_MODEL,
        REFLECTION_MODEL,
        create_offline_policy_app,
    )
    from synth_ai.task.serving import run_app

    if not offline:
        raise click.UsageError(
            "pass --offline: the offline stand-in is the only policy served here "
            "(for a real model, point --inference-url at its OpenAI-compatible endpoint)"
        )
    click.echo(
        f"offline stand-in policy (not an LLM), model {OFFLINE_MODEL!r}: http://{host}:{port}/v1"
        f"\n  also {PROMPT_SENSITIVE_MODEL!r} (slips on fractions and word problems unless its "
        f"prompt teaches them) and {REFLECTION_MODEL!r} (a reflection model for prompt "
        "optimization: proposes from the feedback it is given)",
        err=True,
    )
    run_app(create_offline_policy_app(error_rate=error_rate), host=host, port=port)
