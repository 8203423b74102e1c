"""0.2.24's module path for `SessionTracer` (the tracer is `tracer.py`'s; COMPATIBILITY.md
lists how its methods differ from 0.2.24's)."""

from __future__ import annotations

from .tracer import SessionTracer, TraceSession

__all__ = ["SessionTracer", "TraceSession"]
