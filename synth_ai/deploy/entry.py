"""The Modal app: serves the task app named by `SYNTH_TASK_APP` (default math).

The web function is defined here at module scope, where Modal expects it; `modal_entry.py` at
the repository root re-exports it for `modal deploy modal_entry.py`.
"""

import modal

from synth_ai.deploy.modal import asgi_factory, modal_resources, read_secret_values
from synth_ai.deploy.settings import ModalDeploySettings

settings = ModalDeploySettings.from_environment()
app, function_kwargs = modal_resources(settings, read_secret_values())
build_task_app = asgi_factory(settings.task_app)


@app.function(**function_kwargs)
@modal.concurrent(max_inputs=settings.concurrency)
@modal.asgi_app()
def web():
    return build_task_app()
