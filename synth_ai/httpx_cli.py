"""Keep httpx's command line out of every process that only uses httpx as a client.

httpx's `__init__` imports its CLI (`httpx._main`: click, rich and pygments, about 70 modules
and 60-100 ms measured in issue 15) whenever those packages are installed, and rich is one of
this project's dependencies. No task app, jobs server or client here uses that CLI, so before
httpx is first imported a stand-in takes its place whose `main` loads the real one on call:
`httpx.main()` and the `httpx` console script behave as before.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

MODULE = "httpx._main"


def defer_httpx_cli() -> None:
    """Register the stand-in, unless httpx (or its CLI) is already imported."""
    if "httpx" in sys.modules or MODULE in sys.modules:
        return
    stand_in = types.ModuleType(MODULE, "httpx's CLI, loaded on first call (synth_ai.httpx_cli)")

    def main(*args: Any, **kwargs: Any) -> Any:
        if sys.modules.get(MODULE) is stand_in:
            del sys.modules[MODULE]
        return import_module(MODULE).main(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules[MODULE] = stand_in
