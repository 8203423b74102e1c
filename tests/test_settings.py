"""Settings from the environment: one typed layer, refusing bad values at startup by name, and
env files read by python-dotenv; the README's table lists every variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AliasChoices, Field

from synth_ai.cli.env_file import read_env_file
from synth_ai.jobs.settings import StreamSettings
from synth_ai.settings import EnvironmentSettings, SettingsError, variables
from synth_ai.storage.postgres import PostgresSettings
from synth_ai.task.connections import ConnectionSettings
from synth_ai.tracing_v3.settings import TracingSettings
from synth_ai.ui.signin import SigninSettings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (StreamSettings, TracingSettings, ConnectionSettings, SigninSettings, PostgresSettings)
READ_DIRECTLY = (
    "ENVIRONMENT_API_KEY",
    "ENVIRONMENT_API_KEY_ALIASES",
    "DEV_ENVIRONMENT_API_KEY",
    "OPENAI_API_KEY",
    "SYNTH_TASK_APP",
    "SYNTH_JOBS_TENANT_KEYS",
    "SYNTH_JOBS_URL",
    "SYNTH_MODAL_SECRETS",
    "SYNTH_MODAL_CLI",
)
"""Variables read outside the settings classes: keys (read per request, so a rotation takes
effect at once) and the CLI's and deploy's own."""


NUMERIC = [
    (str(field.validation_alias), name)
    for name, field in StreamSettings.model_fields.items()
    if field.annotation in (int, float)
]
ENV_TEXT = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30
)


@pytest.mark.parametrize(("variable", "name"), NUMERIC)
@settings(max_examples=40, deadline=None)
@given(value=ENV_TEXT | st.floats().map(repr) | st.integers().map(str))
def test_a_stream_setting_is_in_range_or_refused_naming_its_variable(
    variable: str, name: str, value: str
) -> None:
    try:
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv(variable, value)
            loaded = StreamSettings.from_environment()
    except SettingsError as exc:
        assert str(exc).startswith(f"{variable}: ")
        assert "\n" not in str(exc)
        return
    number = getattr(loaded, name)
    field = StreamSettings.model_fields[name]
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    high = next(m.le for m in field.metadata if hasattr(m, "le"))
    assert low <= number <= high  # NaN fails this too


def test_a_refused_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Vendor(EnvironmentSettings):
        port: int = Field(1, validation_alias="VENDOR_API_KEY")

    monkeypatch.setenv("VENDOR_API_KEY", "sk-hunter2")
    with pytest.raises(SettingsError) as refused:
        Vendor.from_environment()
    assert "VENDOR_API_KEY" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_code_may_set_a_field_by_name_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSE_HEARTBEAT_SECS", "7")
    monkeypatch.setenv("SSE_END_GRACE_SECS", "")
    assert StreamSettings.from_environment().heartbeat_s == 7
    assert StreamSettings.from_environment().end_grace_s == 1.0  # empty: the default
    assert StreamSettings(heartbeat_s=3).heartbeat_s == 3
    assert StreamSettings(end_grace_s=2).heartbeat_s == 20.0  # built in code: no environment


def test_of_several_variables_the_first_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_OUTPUT_DIR", "/b")
    assert TracingSettings.from_environment().sft_dir == Path("/b")
    monkeypatch.setenv("TASKAPP_SFT_OUTPUT_DIR", "/a")
    assert TracingSettings.from_environment().sft_dir == Path("/a")
    monkeypatch.setenv("TASKAPP_SFT_OUTPUT_DIR", "")
    assert TracingSettings.from_environment().sft_dir == Path("/b")


def test_a_refused_value_of_an_alternative_variable_names_that_variable() -> None:
    class Workers(EnvironmentSettings):
        count: int = Field(default=1, validation_alias=AliasChoices("APP_WORKERS", "WORKERS"))

    assert Workers.from_environment({"WORKERS": "3"}).count == 3
    with pytest.raises(SettingsError, match=r"^WORKERS: .*\(got 'many'\)$"):
        Workers.from_environment({"WORKERS": "many"})


def test_a_setting_without_its_variable_is_a_programming_error() -> None:
    class Unnamed(EnvironmentSettings):
        port: int = 1

    with pytest.raises(TypeError, match="validation_alias"):
        Unnamed.from_environment({})


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("SYNTH_MAX_CONNECTIONS", "0", ["serve", "math", "--port", "1"]),
        ("TASKAPP_TRACING_ENABLED", "maybe", ["serve", "math", "--port", "1"]),
        ("SSE_HEARTBEAT_SECS", "0", ["jobs", "serve", "--db", "{tmp}/jobs.db"]),
        ("SYNTH_UI_SESSION_TTL_SECS", "-1", ["jobs", "serve", "--db", "{tmp}/jobs.db"]),
    ],
)
def test_commands_refuse_a_bad_setting_in_one_line_before_serving(
    tmp_path: Path, variable: str, value: str, args: list[str]
) -> None:
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    done = subprocess.run(
        [sys.executable, "-m", "synth_ai", *argv],
        env={"PATH": "/usr/bin:/bin", "ENVIRONMENT_API_KEY": "k" * 24, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert f"{variable}: " in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_env_files_are_read_as_dotenv_reads_them(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nexport A=1\nB = 'two words'\nC=x # trailing\n"
        'KEY="quoted" # a comment after quotes\nD=${A}-2\n\n'
    )
    assert read_env_file(env) == {
        "A": "1",
        "B": "two words",
        "C": "x",
        "KEY": "quoted",
        "D": "1-2",
    }


@pytest.mark.parametrize("text", ["JUST_A_NAME\n", "A=1\n=3\n", 'A="unterminated\n'])
def test_a_malformed_env_file_line_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    env = tmp_path / "app.env"
    env.write_text(text)
    with pytest.raises(click.BadParameter, match=re.escape(f"{env}:")):
        read_env_file(env)


def test_the_readme_table_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    declared = {
        name for cls in SETTINGS for field in cls.model_fields.values() for name in variables(field)
    }
    assert declared | set(READ_DIRECTLY) <= listed
