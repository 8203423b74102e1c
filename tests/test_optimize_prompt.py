"""The initial prompt model: seed candidate, matching the app's messages, rendering candidates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth_ai.optimize.prompt import (
    REQUIRED,
    InitialPrompt,
    PromptMessage,
    PromptMismatch,
    match,
    render,
)

MATH = InitialPrompt(
    [
        PromptMessage("user", "Problem: {query}", order=1),
        PromptMessage("system", "You are a careful mathematician.", order=0),
    ],
    {"query": REQUIRED},
)
# text with every character a regex, str.format or the placeholder syntax treats specially
TRICKY = st.text(alphabet=st.sampled_from(list("ab .*+?()[]{}|^$\\%\n")) | st.characters())


def test_messages_follow_their_order_and_components_are_named_by_role() -> None:
    assert [m.role for m in MATH.messages] == ["system", "user"]
    assert MATH.component_names() == ["system", "user"]
    assert MATH.seed_candidate() == {
        "system": "You are a careful mathematician.",
        "user": "Problem: {query}",
    }
    repeated = InitialPrompt(
        [PromptMessage("user", "a"), PromptMessage("assistant", "b"), PromptMessage("user", "c")]
    )
    assert repeated.component_names() == ["user_1", "assistant", "user_2"]


@given(value=TRICKY)
def test_render_of_the_seed_then_match_gives_the_values_back(value: str) -> None:
    messages = render(MATH.seed_candidate(), MATH, {"query": value})
    assert messages[1] == {"role": "user", "content": f"Problem: {value}"}
    assert match(MATH, messages) == {"query": value}


@given(literal_a=TRICKY, literal_b=TRICKY, x=TRICKY, y=TRICKY)
def test_literal_text_is_matched_as_text(literal_a: str, literal_b: str, x: str, y: str) -> None:
    """A pattern's regex and format characters are plain text: they match only themselves."""
    prompt = InitialPrompt(
        [PromptMessage("user", literal_a + "{x}" + "<sep>" + literal_b + "{y}" + literal_b)],
        {"x": REQUIRED, "y": REQUIRED},
    )
    messages = render(prompt.seed_candidate(), prompt, {"x": x, "y": y})
    try:
        assert match(prompt, messages) == {"x": x, "y": y}
    except PromptMismatch as exc:
        # refused only where the text really fits in more than one way
        assert "more than one way" in str(exc)
        assert "<sep>" + literal_b in x + "<sep>" + literal_b + y
    spoiled = [{"role": "user", "content": "X" + messages[0]["content"]}]
    if not literal_a.startswith("X") and literal_a:
        with pytest.raises(PromptMismatch, match=r"message 0 \(user\)"):
            match(prompt, spoiled)


def test_an_ambiguous_message_is_refused_not_guessed() -> None:
    prompt = InitialPrompt([PromptMessage("user", "{a} and {b}")], {"a": REQUIRED, "b": REQUIRED})
    assert match(prompt, [{"role": "user", "content": "x and y"}]) == {"a": "x", "b": "y"}
    with pytest.raises(PromptMismatch, match="more than one way"):
        match(prompt, [{"role": "user", "content": "x and y and z"}])


def test_a_mismatch_names_the_message_and_its_role() -> None:
    with pytest.raises(PromptMismatch) as wrong_text:
        match(
            MATH,
            [
                {"role": "system", "content": "You are a careful mathematician."},
                {"role": "user", "content": "Question: 1 + 1"},
            ],
        )
    assert (wrong_text.value.index, wrong_text.value.role) == (1, "user")
    assert str(wrong_text.value).startswith("message 1 (user): ")
    with pytest.raises(PromptMismatch, match=r"message 0 \(user\): expected a system message"):
        match(MATH, [{"role": "user", "content": "Problem: 1"}])
    with pytest.raises(PromptMismatch, match=r"message 1 \(user\): missing"):
        match(MATH, [{"role": "system", "content": "You are a careful mathematician."}])
    with pytest.raises(PromptMismatch, match="only text content"):
        match(MATH, [{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}])


def test_an_undeclared_placeholder_is_text_and_the_mismatch_says_so() -> None:
    prompt = InitialPrompt([PromptMessage("user", "Problem: {problem}")], {"query": REQUIRED})
    assert match(prompt, [{"role": "user", "content": "Problem: {problem}"}]) == {}
    with pytest.raises(PromptMismatch, match=r"\{problem\} is not a declared wildcard"):
        match(prompt, [{"role": "user", "content": "Problem: 2 + 2"}])


def test_the_conversation_after_the_prompt_and_text_parts_are_accepted() -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are a careful "},
                                       {"type": "text", "text": "mathematician."}]},
        {"role": "user", "content": "Problem: 7"},
        {"role": "assistant", "content": "7"},
    ]  # fmt: skip
    assert match(MATH, messages) == {"query": "7"}


def test_a_wildcard_used_twice_must_agree() -> None:
    prompt = InitialPrompt(
        [PromptMessage("system", "About {topic}."), PromptMessage("user", "{topic}?", order=1)],
        {"topic": REQUIRED},
    )
    agreeing = [{"role": "system", "content": "About x."}, {"role": "user", "content": "x?"}]
    assert match(prompt, agreeing) == {"topic": "x"}
    with pytest.raises(PromptMismatch, match=r"message 1 \(user\): \{topic\} differs"):
        match(prompt, [agreeing[0], {"role": "user", "content": "y?"}])


def test_render_fills_placeholders_once_and_keeps_other_braces() -> None:
    prompt = InitialPrompt(
        [PromptMessage("user", "{query}")], {"query": REQUIRED, "style": "briefly"}
    )
    candidate = {"user": "Answer {style} in \\boxed{} : {query} {unknown}"}
    assert render(candidate, prompt, {"query": "{style}"}) == [
        {"role": "user", "content": "Answer briefly in \\boxed{} : {style} {unknown}"}
    ]


def test_malformed_prompts_are_refused_by_field() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        InitialPrompt([])
    with pytest.raises(ValueError, match=r"messages\[0\].pattern: \{a\}\{b\} touch"):
        InitialPrompt([PromptMessage("user", "{a}{b}")], {"a": REQUIRED, "b": REQUIRED})
    with pytest.raises(ValueError, match="not a name"):
        InitialPrompt([PromptMessage("user", "x")], {"a b": REQUIRED})
    with pytest.raises(ValueError, match=r"messages\[0\].order"):
        InitialPrompt([PromptMessage("user", "x", order=True)])


def test_a_candidate_must_name_exactly_the_components() -> None:
    MATH.check_candidate({"system": "s", "user": "u"})
    with pytest.raises(ValueError, match="missing user; unknown 'assistant'"):
        MATH.check_candidate({"system": "s", "assistant": "a"})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", 7]) | JSON},
    optional={"content": JSON | st.just("Problem: x") | st.just(MATH.messages[0].pattern)},
)


@given(messages=st.lists(MESSAGE | JSON, max_size=4))
def test_any_messages_either_match_or_are_a_named_mismatch(messages: list[object]) -> None:
    try:
        values = match(MATH, messages)
    except PromptMismatch as exc:
        assert str(exc).startswith(f"message {exc.index}")
    else:
        assert set(values) == {"query"}


@st.composite
def prompts_and_values(draw: st.DrawFn) -> tuple[InitialPrompt, dict[str, str]]:
    """A prompt of 1-3 messages whose patterns interleave tricky text and wildcards."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "query"]), min_size=0, max_size=4))
    messages = []
    for order in range(draw(st.integers(1, 3))):
        pattern = draw(TRICKY)
        for name in draw(st.lists(st.sampled_from(names), max_size=3)) if names else []:
            pattern += "{" + name + "}" + draw(TRICKY.filter(bool))
        messages.append(PromptMessage(draw(st.sampled_from(["system", "user"])), pattern, order))
    values = {name: draw(TRICKY) for name in set(names)}
    return InitialPrompt(messages, dict.fromkeys(names, REQUIRED)), values


@given(case=prompts_and_values())
def test_matching_never_answers_values_other_than_those_sent(
    case: tuple[InitialPrompt, dict[str, str]],
) -> None:
    """The property behind "never guess": a match answers exactly the values rendered, or
    refuses; it never answers different ones."""
    prompt, values = case
    messages = render(prompt.seed_candidate(), prompt, values)
    used = {n for m in prompt.messages for n in values if "{" + n + "}" in m.pattern}
    try:
        assert match(prompt, messages) == {n: values[n] for n in used}
    except PromptMismatch as exc:
        assert "more than one way" in str(exc)
