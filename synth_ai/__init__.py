"""synth-ai: write task apps that optimizers and trainers can roll out against."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synth-ai")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
