"""`synth-ai jobs serve`: the jobs API, its event streams and the dashboard, in the foreground.

Once it listens it prints a short banner (URL, auth, where the event log is) on stderr, and the
dashboard's sign-in link on stdout; then one line per request, as text or as JSON.
"""

from __future__ import annotations

from pathlib import Path

import click

from synth_ai.jobs.service import DEFAULT_ARTIFACTS, DEFAULT_JOBS_DB

from .proxy import forwarded_allow_ips_option
from .serve import log_format_option, max_connections_option


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8002, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--db",
    default=str(DEFAULT_JOBS_DB),
    show_default=True,
    help="The event log: a SQLite file or sqlite:///path, or postgresql://... shared by replicas.",
)
@click.option(
    "--artifacts",
    "artifacts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where job files go (default: beside a SQLite log, else {DEFAULT_ARTIFACTS}); "
    "replicas need one they all share.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="A browser origin allowed to read streams (repeatable; none by default).",
)
@forwarded_allow_ips_option
@max_connections_option
@log_format_option
def serve(
    host: str,
    port: int,
    db: str,
    artifacts_dir: Path | None,
    cors_origins: tuple[str, ...],
    forwarded_allow_ips: str | None,
    max_connections: int | None,
    log_format: str,
) -> None:
    """Serve the jobs API and event streams, and the dashboard at /ui/; it also runs `eval`
    and `prompt_learning` jobs itself. Prints a sign-in URL for the dashboard (single use,
    short-lived)."""
    from synth_ai.eval import EvalJobKind
    from synth_ai.jobs import create_jobs_app
    from synth_ai.jobs.tenants import TENANT_KEYS_VAR, tenant_keys
    from synth_ai.optimize.job_kind import KIND, PromptLearningJobKind
    from synth_ai.storage import StoreUnavailable
    from synth_ai.task.auth import PRIMARY_KEY_VAR, configured_keys
    from synth_ai.task.banner import jobs_banner, print_banner
    from synth_ai.task.serving import run_app
    from synth_ai.ui import sign_in_banner

    try:
        app = create_jobs_app(
            db,
            artifacts_dir=artifacts_dir,
            kinds={"eval": EvalJobKind(), KIND: PromptLearningJobKind()},
            cors_origins=cors_origins,
        )
    except ValueError as exc:  # a setting or --db refused at startup; the message names it
        raise click.UsageError(str(exc)) from None
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    tenants = len(tenant_keys())
    if configured_keys() or tenants:
        click.echo(sign_in_banner(app.state.signin, host, port, "Dashboard"))
    else:  # no key anyone could sign in with: say so rather than offer a sign-in
        click.echo(
            f"Dashboard: http://{host}:{port}/ui/, but nobody can sign in: the API answers 503 "
            f"until {PRIMARY_KEY_VAR} (or {TENANT_KEYS_VAR}) is set"
        )
    run_app(
        app,
        host=host,
        port=port,
        max_connections=max_connections,
        log_format=log_format,
        forwarded_allow_ips=forwarded_allow_ips,
        on_started=lambda url: print_banner(jobs_banner(app, url, tenants), log_format),
    )
