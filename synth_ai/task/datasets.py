"""A registry of the datasets a task app serves, loaded once on first use.

`TaskDatasetSpec` and the spec-taking forms of the methods are 0.2.24's names for the same
registry (COMPATIBILITY.md).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Hashable
from typing import Any, overload

from pydantic import ValidationInfo, field_validator

from .contracts import DatasetInfo

DatasetLoader = Callable[[DatasetInfo], Any]
RegistryLoader = DatasetLoader


class TaskDatasetSpec(DatasetInfo):
    """A dataset as 0.2.24 describes it: a `DatasetInfo` that must have an id and a name."""

    id: str
    name: str
    cardinality: int | None = None

    @field_validator("default_split")
    @classmethod
    def _default_split_is_a_split(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and value not in (info.data.get("splits") or []):
            raise ValueError("default_split must be one of splits when provided")
        return value


class TaskDatasetRegistry:
    """Maps dataset ids to their description and a loader; each loader runs at most once
    (per id, or per id, version and split when a spec is asked for), unless registered
    with `cache=False`."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[DatasetInfo, DatasetLoader, bool]] = {}
        self._loaded: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def register(self, info: DatasetInfo, loader: DatasetLoader, *, cache: bool = True) -> None:
        if not info.id:
            raise ValueError("a registered dataset needs an id")
        if info.id in self._entries:
            raise ValueError(f"dataset {info.id!r} is already registered")
        self._entries[info.id] = (info, loader, cache)

    @overload
    def describe(self) -> builtins.list[DatasetInfo]: ...
    @overload
    def describe(self, dataset_id: str) -> DatasetInfo: ...
    def describe(self, dataset_id: str | None = None) -> builtins.list[DatasetInfo] | DatasetInfo:
        """Every dataset; or, given an id (0.2.24's form), that one's description."""
        if dataset_id is None:
            return self.list()
        return self._entry(dataset_id)[0]

    def list(self) -> builtins.list[DatasetInfo]:
        return [info for info, _, _ in self._entries.values()]

    def get(self, dataset: str | DatasetInfo) -> Any:
        """The loaded dataset, by id or by a spec whose set fields override the registered
        ones; raises `KeyError` naming the known ids when it is not registered."""
        if isinstance(dataset, str):
            info, loader, cache = self._entry(dataset)
            key: Hashable = dataset
        else:
            base, loader, cache = self._entry(dataset.id or "")
            info = base.model_copy(update=dataset.model_dump(exclude_unset=True))
            key = (info.id, info.version, info.default_split)
        if not cache:
            return loader(info)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = loader(info)
            return self._loaded[key]

    def _entry(self, dataset_id: str) -> tuple[DatasetInfo, DatasetLoader, bool]:
        if dataset_id not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown dataset {dataset_id!r} (registered: {known})")
        return self._entries[dataset_id]

    @staticmethod
    def ensure_split(spec: DatasetInfo, split: str | None) -> str:
        """The split to use: `split` when the spec has it, else its default."""
        if not spec.splits:
            return split or spec.default_split or "default"
        if split is None:
            if spec.default_split:
                return spec.default_split
            raise ValueError(f"split must be provided for dataset {spec.id}")
        if split not in spec.splits:
            raise ValueError(f"Unknown split '{split}' for dataset {spec.id}")
        return split

    @staticmethod
    def normalise_seed(seed: Any, *, cardinality: int | None = None) -> int:
        """A seed as a non-negative integer below `cardinality` (when given)."""
        value = abs(int(seed))
        return value % cardinality if cardinality and cardinality > 0 else value
