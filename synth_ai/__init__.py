"""synth-ai: write task apps that optimizers and trainers can roll out against."""

from synth_ai.httpx_cli import defer_httpx_cli

__version__ = "0.3.0"

defer_httpx_cli()

__all__ = ["__version__"]
