"""`modal deploy modal_entry.py`: the task app named by `SYNTH_TASK_APP` (default math) on Modal.

Run from a checkout, this deploys the same app as `synth-ai deploy APP --runtime modal` with
default settings. The key must reach the app: export `ENVIRONMENT_API_KEY` first (it goes as
`modal.Secret.from_local_environ`), or name a Modal secret holding it in `SYNTH_MODAL_SECRETS`;
without either the deploy refuses. `synth-ai deploy APP --runtime modal --dry-run` shows what
would be built.
"""

from synth_ai.deploy.entry import app, build_task_app, function_kwargs, settings, web

__all__ = ["app", "build_task_app", "function_kwargs", "settings", "web"]
