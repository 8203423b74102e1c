"""The entry `modal deploy modal_entry.py` runs (also what `synth-ai deploy --runtime modal` runs).

It serves the task app named by `SYNTH_TASK_APP` (default `math`) with the settings the CLI
passed, or defaults.
"""

from synth_ai.deploy.entry import app, build_task_app, function_kwargs, settings, web

__all__ = ["app", "build_task_app", "function_kwargs", "settings", "web"]
