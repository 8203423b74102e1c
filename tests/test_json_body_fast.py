"""The rollout body's one-pass read (`validate_strict`) answers as the plain strict read
(`validate_strict_plain`) does: the same model, or the same refusal to the byte, over bodies
with non-finite and overlong numbers, those words inside strings, duplicate keys, malformed
text and deep nesting. And the byte test that picks the one pass misses no number the strict
read refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from synth_ai.task.contracts import RolloutRequest
from synth_ai.task.errors import TaskAppError, validation_error
from synth_ai.task.json_body import (
    loads_strict,
    maybe_non_finite,
    validate_strict,
    validate_strict_plain,
)

NUMBER = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.sampled_from(
        [
            "NaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1E+309",
            "1e-400",
            "1.8e308",
            "4.9e-324",
            "1e0099",
            "9" * 15 + "e99",
            "123456789012345.123456789012345e99",
            "1" * 400,
            "1" + "0" * 400 + ".5",
            "1" * 4301,
            "0." + "0" * 30 + "1",
        ]
    ),
)
WORDS = st.sampled_from(["NaN", "Infinity", "e400", "E+309", "1234567890123456789", "ok"])
STRING = st.one_of(
    st.text(max_size=8).map(json.dumps),  # escapes non-ASCII, lone surrogates as \ud800
    st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),  # raw, maybe not UTF-8
    WORDS.map(json.dumps),
)
KEY = st.sampled_from(
    [
        "run_id",
        "trace_correlation_id",
        "env",
        "policy",
        "config",
        "seed",
        "env_name",
        "temperature",
        "top_p",
        "max_tokens",
        "model",
        "safety",
        "max_time_s",
        "record",
        "return_trace",
        "trace_format",
        "mode",
        "ops",
        "x",
    ]
)
SCALAR = st.one_of(NUMBER, STRING, st.sampled_from(["true", "false", "null"]))


def obj(pairs: list[tuple[str, str]]) -> str:
    """An object's text, keys in the order given (duplicates kept, as a caller may send)."""
    return "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in pairs) + "}"


VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(KEY, inner), max_size=3).map(obj)
    ),
    max_leaves=8,
)
TYPED: dict[str, st.SearchStrategy[str]] = {
    "run_id": STRING,
    "trace_correlation_id": STRING,
    "env": st.lists(
        st.tuples(st.just("seed"), NUMBER)
        | st.tuples(st.just("config"), VALUE)
        | st.tuples(st.just("env_name"), STRING),
        max_size=3,
    ).map(obj),
    "policy": st.lists(st.tuples(KEY, NUMBER | STRING | VALUE), max_size=4).map(
        lambda pairs: obj([("config", obj(pairs))])
    ),
    "safety": st.lists(st.tuples(st.sampled_from(["max_time_s", "max_ops"]), NUMBER)).map(obj),
    "record": st.lists(
        st.tuples(st.just("return_trace"), SCALAR)
        | st.tuples(st.just("trace_format"), st.sampled_from(['"compact"', '"full"', '"x"'])),
        max_size=2,
    ).map(obj),
    "mode": st.sampled_from(['"eval"', '"rl"', '"other"', "1"]),
    "ops": st.lists(STRING | VALUE, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
}
FIELD = KEY.flatmap(lambda key: st.tuples(st.just(key), TYPED.get(key, VALUE) | VALUE))
REQUEST = st.tuples(st.booleans(), st.lists(FIELD, max_size=6)).map(
    lambda drawn: obj(([("run_id", '"r"')] if drawn[0] else []) + drawn[1])
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request's text, sometimes broken: cut short, a byte put in, or nested deep."""
    text = draw(REQUEST)
    change = draw(st.sampled_from(["none", "none", "cut", "insert", "nest"]))
    if change == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif change == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(list('{}[]",:0eE.-+ N\x00\x1f'))) + text[at:]
    elif change == "nest":
        depth = draw(st.sampled_from([1, 50, 199, 200, 201, 600, 1100, 3000]))
        text = obj([("run_id", '"r"'), ("env", obj([("config", "[" * depth + "1" + "]" * depth)]))])
    return text.encode("utf-8", "surrogatepass")


def outcome(validate: Callable[[type[RolloutRequest], bytes], RolloutRequest], body: bytes) -> Any:
    """What the rollout route makes of `body` through `validate`: the model, every field and
    value as Python shows it (so 1 and 1.0, or 0.0 and -0.0, differ), or the refusal's bytes."""
    try:
        model = validate(RolloutRequest, body)
    except ValidationError as exc:
        refusal = validation_error(exc, "The rollout request is invalid.")
        return refusal.status, bytes(refusal.to_response().body)
    except TaskAppError as exc:
        return exc.status, bytes(exc.to_response().body)
    return repr(model.model_dump()), repr(model), sorted(model.model_fields_set)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
@example(b'{"run_id": "r", "env": {"config": {"x": NaN}}}')
@example(b'{"run_id": "r", "policy": {"config": {"temperature": 1e400}}}')
@example(b'{"run_id": "r", "env": {"config": {"x": "\\ud800"}}}')
@example(b'{"run_id": "r", "run_id": "s", "x": 1, "y": 2, "x": 3}')
@example(b'\xef\xbb\xbf{"run_id": "r"}')
@example(b'{"run_id": "r", "env": {"seed": 1.0}, "record": {"return_trace": "yes"}}')
def test_the_one_pass_read_answers_as_the_plain_read(body: bytes) -> None:
    assert outcome(validate_strict, body) == outcome(validate_strict_plain, body)


@settings(max_examples=1500, deadline=None)
@given(NUMBER | VALUE)
def test_a_number_the_strict_read_refuses_is_always_sent_to_it(text: str) -> None:
    """No false negatives: whatever `loads_strict` refuses as non-finite, or cannot read as a
    number at all, `maybe_non_finite` flags."""
    body = text.encode("utf-8", "surrogatepass")
    try:
        loads_strict(body)
    except TaskAppError as exc:
        if exc.status == 422 or body.lstrip(b"-").isdigit():
            assert maybe_non_finite(body)


def test_an_everyday_rollout_body_takes_the_one_pass() -> None:
    body = {
        "run_id": "3fe1a2b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b",
        "env": {"seed": 123456, "config": {"difficulty": 0.25}},
        "policy": {"config": {"inference_url": "http://h:8000/v1", "temperature": 0.7}},
        "mode": "eval",
    }
    assert not maybe_non_finite(json.dumps(body).encode())
