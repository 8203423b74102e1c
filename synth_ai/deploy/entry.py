"""The Modal app: serves the task app named by the plan (default: `SYNTH_TASK_APP`, else math).

The web function is defined here at module scope, where Modal expects it; `modal_entry.py` at
the repository root re-exports it for `modal deploy modal_entry.py`, and an installed package
deploys it with `modal deploy -m synth_ai.deploy.entry`. Either way the function lives in this
module, which the plan's `synth_ai` source mount carries into the container.

Locally (`modal deploy`) the plan decides the image, secrets and options. In the container
(`modal.is_local()` false) Modal has those already; only the settings in the function's
environment are read, and the app is built from the mounted source when the first request
comes.
"""

import modal

from synth_ai.deploy.modal import asgi_factory, modal_resources, read_secret_values
from synth_ai.deploy.plan import plan_from_environment
from synth_ai.deploy.settings import ModalDeploySettings

if modal.is_local():
    plan = plan_from_environment()
    settings = plan.settings
    app, function_kwargs = modal_resources(plan, read_secret_values())
else:
    settings = ModalDeploySettings.from_environment()
    app, function_kwargs = modal.App(settings.app_name()), {}
build_task_app = asgi_factory(settings.task_app, settings.reference)


@app.function(**function_kwargs)
@modal.concurrent(max_inputs=settings.max_inputs, target_inputs=settings.target_inputs)
@modal.asgi_app()
def web():
    return build_task_app()
