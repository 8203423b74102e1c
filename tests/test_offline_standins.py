"""The offline stand-ins (labelled fakes for LLMs) a prompt optimizer runs against: a policy
whose accuracy depends on its prompt, and a reflection model that proposes from feedback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gepa.strategies.instruction_proposal import InstructionProposalSignature

from synth_ai.examples.math_task_app import generate_problem
from synth_ai.examples.math_task_app.app import DEFAULT_PROMPT
from synth_ai.offline_policy import (
    LESSONS,
    PROMPT_SENSITIVE_MODEL,
    REFLECTION_MODEL,
    create_offline_policy_app,
)
from synth_ai.offline_policy.lessons import LESSON_FOR
from synth_ai.task import RolloutResponse, TaskAppClient, serve_in_background

from .conftest import KEY
from .processes import start_server, stop_server

SEEDS = range(60)
HINTS = "\n".join(lesson.hint for lesson in LESSONS)


@pytest.fixture(scope="module")
def stand_in_url() -> Iterator[str]:
    with serve_in_background(create_offline_policy_app()) as url:
        yield url


def rollouts(
    app_url: str, policy_url: str, system: str, seeds: range, model: str = PROMPT_SENSITIVE_MODEL
) -> list[RolloutResponse]:
    async def run() -> list[RolloutResponse]:
        async with TaskAppClient(app_url, KEY) as client:
            return await asyncio.gather(
                *(
                    client.rollout(
                        {
                            "run_id": f"run-{seed}",
                            "env": {"seed": seed, "config": {"split": "train"}},
                            "policy": {
                                "config": {
                                    "model": model,
                                    "inference_url": f"{policy_url}/v1",
                                    "prompt_template": {
                                        "system": system,
                                        "user": DEFAULT_PROMPT["user"],
                                    },
                                }
                            },
                        }
                    )
                    for seed in seeds
                )
            )

    return asyncio.run(run())


def by_kind(responses: list[RolloutResponse]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for response in responses:
        details = response.metrics.details
        kinds.setdefault(details["kind"], []).append(details)
    return kinds


def accuracy(responses: list[RolloutResponse]) -> float:
    return sum(bool(r.metrics.details["correct"]) for r in responses) / len(responses)


def test_the_prompt_sensitive_policy_slips_on_the_kinds_its_prompt_does_not_teach(
    math_app_url: str, stand_in_url: str
) -> None:
    seed_prompt = rollouts(math_app_url, stand_in_url, DEFAULT_PROMPT["system"], SEEDS)
    kinds = by_kind(seed_prompt)
    assert all(d["correct"] for d in kinds["arithmetic"])
    assert not any(d["correct"] for d in kinds["word"])
    assert {d["reason"] for d in kinds["word"]} == {"unparseable_answer"}
    assert not any(d["correct"] for d in kinds["fractions"])
    assert all(d["submitted_answer"].startswith("\u2248") for d in kinds["fractions"])
    assert "unparseable_answer (kind: fractions)" in kinds["fractions"][0]["feedback"]

    taught_fractions = f"{DEFAULT_PROMPT['system']} {LESSON_FOR['fractions'].hint}"
    one_lesson = by_kind(rollouts(math_app_url, stand_in_url, taught_fractions, SEEDS))
    assert all(d["correct"] for d in one_lesson["fractions"] + one_lesson["arithmetic"])
    assert not any(d["correct"] for d in one_lesson["word"])

    # the trigger phrases are what counts, in any case, wherever in the prompt
    both = rollouts(math_app_url, stand_in_url, "EXACT FRACTION. Bare Number.", SEEDS)
    assert accuracy(both) == 1.0
    assert accuracy(both) - accuracy(seed_prompt) >= 0.5


def test_other_model_names_keep_the_plain_solver(math_app_url: str, stand_in_url: str) -> None:
    plain = rollouts(
        math_app_url, stand_in_url, DEFAULT_PROMPT["system"], range(30), model="offline-policy"
    )
    assert accuracy(plain) == 1.0


def reflection_prompt(instruction: str, examples: list[dict[str, Any]]) -> str:
    """The exact prompt gepa 0.1.4 sends to its reflection model, by its own renderer."""
    prompt = InstructionProposalSignature.prompt_renderer(
        {"current_instruction_doc": instruction, "dataset_with_feedback": examples}
    )
    assert isinstance(prompt, str)
    return prompt


def example(seed: int, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "Inputs": {"problem": generate_problem(seed).text},
        "Generated Outputs": f"math_submit({details['submitted_answer']!r})",
        "Feedback": details,
    }


def reflect(url: str, prompt: str, model: str = REFLECTION_MODEL) -> str:
    answer = httpx.post(
        url, json={"model": model, "messages": [{"role": "user", "content": prompt}]}
    )
    assert answer.status_code == 200, answer.text
    content = answer.json()["choices"][0]["message"]["content"]
    return InstructionProposalSignature.output_extractor(content)["new_instruction"]


def test_reflection_proposes_from_the_feedback_it_is_given(
    math_app_url: str, stand_in_url: str
) -> None:
    seeds = range(12)
    responses = rollouts(math_app_url, stand_in_url, DEFAULT_PROMPT["system"], seeds)
    examples = [example(s, r.metrics.details) for s, r in zip(seeds, responses, strict=True)]
    failed = {e["Feedback"]["kind"] for e in examples if not e["Feedback"]["correct"]}
    assert failed == {"fractions", "word"}
    base, full = f"{stand_in_url}/v1/chat/completions", f"{stand_in_url}/chat/completions"

    proposal = reflect(base, reflection_prompt(DEFAULT_PROMPT["system"], examples))
    assert proposal == f"{DEFAULT_PROMPT['system']}\n{HINTS}"
    # gepa's prompt is recognised under any model name, at either path
    assert reflect(full, reflection_prompt(DEFAULT_PROMPT["system"], examples), "m") == proposal

    only_words = [e for e in examples if e["Feedback"]["kind"] != "fractions"]
    assert reflect(base, reflection_prompt("Be careful.", only_words)) == (
        f"Be careful.\n{LESSON_FOR['word'].hint}"
    )
    passed = [e for e in examples if e["Feedback"]["correct"]]
    assert passed
    assert reflect(base, reflection_prompt("Be careful.", passed)) == "Be careful."
    # a lesson already taught is not added twice
    assert reflect(base, reflection_prompt(proposal, examples)) == proposal


def test_reflection_reads_feedback_however_it_is_rendered(stand_in_url: str) -> None:
    url = f"{stand_in_url}/v1/chat/completions"
    as_text = [{"Feedback": "wrong_answer (kind: fractions): submitted '0.58', expected 7/12"}]
    assert reflect(url, reflection_prompt("x", as_text)) == f"x\n{LESSON_FOR['fractions'].hint}"
    # no kind named: read from the problem shown
    by_problem = [
        {"Inputs": generate_problem(seed).text, "Feedback": "correct: False"}
        for seed in range(40)
        if generate_problem(seed).kind == "word"
    ][:1]
    assert reflect(url, reflection_prompt("x", by_problem)) == f"x\n{LESSON_FOR['word'].hint}"
    refused = httpx.post(
        url,
        json={"model": REFLECTION_MODEL, "messages": [{"role": "user", "content": "no block"}]},
    )
    assert refused.status_code == 400 and "```" in refused.json()["error"]["message"]


def test_the_lessons_a_reflection_adds_teach_the_policy(
    math_app_url: str, stand_in_url: str
) -> None:
    """Reflection on training seeds improves the policy on seeds it never saw."""
    train, held_out = range(0, 12), range(100, 160)
    seed_system = DEFAULT_PROMPT["system"]
    responses = rollouts(math_app_url, stand_in_url, seed_system, train)
    examples = [example(s, r.metrics.details) for s, r in zip(train, responses, strict=True)]
    proposal = reflect(
        f"{stand_in_url}/v1/chat/completions", reflection_prompt(seed_system, examples)
    )
    before = accuracy(rollouts(math_app_url, stand_in_url, seed_system, held_out))
    after = accuracy(rollouts(math_app_url, stand_in_url, proposal, held_out))
    assert after == 1.0 and after - before >= 0.5


def test_policy_serve_offline_answers_both_models() -> None:
    process, url, output = start_server(["policy", "serve", "--offline"])
    try:
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert {m["id"] for m in models} >= {PROMPT_SENSITIVE_MODEL, REFLECTION_MODEL}
        text = reflect(
            f"{url}/v1/chat/completions",
            reflection_prompt("x", [{"Feedback": "no_tool_call, kind: word"}]),
        )
        assert text == f"x\n{LESSON_FOR['word'].hint}"
    finally:
        log = stop_server(process, output)
    assert REFLECTION_MODEL in log and PROMPT_SENSITIVE_MODEL in log
