"""Deploying task apps to Modal: settings, the plan of what will be built, its checks, and the
Modal objects behind `modal_entry.py` (only `modal.py` and `entry.py` import modal)."""

from .plan import DeployPlan, ImagePlan, build_plan, describe
from .settings import ModalDeploySettings
from .source import LocalSource, SourceError

__all__ = [
    "DeployPlan",
    "ImagePlan",
    "LocalSource",
    "ModalDeploySettings",
    "SourceError",
    "build_plan",
    "describe",
]
