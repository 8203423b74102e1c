"""A registry of the datasets a task app serves, loaded once on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .contracts import DatasetInfo

DatasetLoader = Callable[[DatasetInfo], Any]


class TaskDatasetRegistry:
    """Maps dataset ids to their description and a loader; each loader runs at most once."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[DatasetInfo, DatasetLoader]] = {}
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def register(self, info: DatasetInfo, loader: DatasetLoader) -> None:
        if not info.id:
            raise ValueError("a registered dataset needs an id")
        if info.id in self._entries:
            raise ValueError(f"dataset {info.id!r} is already registered")
        self._entries[info.id] = (info, loader)

    def describe(self) -> list[DatasetInfo]:
        return [info for info, _ in self._entries.values()]

    def get(self, dataset_id: str) -> Any:
        """The loaded dataset; raises `KeyError` naming the known ids when it is not registered."""
        if dataset_id not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown dataset {dataset_id!r} (registered: {known})")
        with self._lock:
            if dataset_id not in self._loaded:
                info, loader = self._entries[dataset_id]
                self._loaded[dataset_id] = loader(info)
            return self._loaded[dataset_id]
