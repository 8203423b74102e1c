"""The packages that load their names on first use: every exported name resolves, is listed by
`dir()`, and an unknown one is an AttributeError, as for any module."""

from __future__ import annotations

from importlib import import_module

import pytest


@pytest.mark.parametrize("package", ["synth_ai.task", "synth_ai.tracing_v3", "synth_ai.ui"])
def test_every_exported_name_resolves_and_unknown_names_do_not(package: str) -> None:
    module = import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(module, name) is value and name in vars(module)  # kept after first use
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
