"""Deploying task apps: Modal settings and the app builder behind `modal_entry.py`."""

from .settings import ModalDeploySettings

__all__ = ["ModalDeploySettings"]
