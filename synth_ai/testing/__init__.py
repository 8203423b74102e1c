"""Testing task apps with pytest: fixtures (installed as a plugin through the `pytest11` entry
point, so an author's tests get them with no conftest) and `assert_conforms`."""

from .conformance import assert_conforms

__all__ = ["assert_conforms"]
