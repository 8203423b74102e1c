"""Testing task apps with pytest: fixtures (installed as a plugin through the `pytest11` entry
point, so an author's tests get them with no conftest), `assert_conforms`, and the scripted
stand-in policy's parts (`ToolCall`, `Rule`, `serve_scripted_policy`)."""

from synth_ai.offline_policy.scripted import Rule, ToolCall

from .conformance import assert_conforms
from .scripted import ServedPolicy, serve_scripted_policy

__all__ = ["Rule", "ServedPolicy", "ToolCall", "assert_conforms", "serve_scripted_policy"]
