"""synth-ai: write task apps that optimizers and trainers can roll out against."""

__version__ = "0.3.0"

__all__ = ["__version__"]
