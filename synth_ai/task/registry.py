"""Named task apps: registered in code or discovered from installed packages' entry points."""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from .config import TaskAppConfig

logger = logging.getLogger("synth_ai.task.registry")

ENTRY_POINT_GROUP = "synth_ai.task_apps"


class ConfigFactoryFailed(Exception):
    """An app's config factory raised; the message names the app and the exception."""


@dataclass(frozen=True, slots=True)
class TaskAppEntry:
    """A task app by name: how to build its config, and the names it answers to."""

    app_id: str
    config_factory: Callable[[], TaskAppConfig]
    description: str = ""
    aliases: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    """Env files `synth-ai serve` applies for this app (0.2.24's field; existing values win)."""
    modal: Any = None
    """0.2.24's `ModalDeploymentConfig` (`synth_ai.task.apps`), kept for `deploy` to read."""

    def __post_init__(self) -> None:
        if isinstance(self.config_factory, str) and callable(self.description):
            # 0.2.24's positional order: (app_id, description, config_factory)
            factory, description = self.description, self.config_factory
            object.__setattr__(self, "config_factory", factory)
            object.__setattr__(self, "description", description)
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "env_files", tuple(self.env_files))

    def build(self) -> TaskAppConfig:
        """The app's config; `ConfigFactoryFailed` (chained to the original) if the factory
        raises, so a command can say which app failed and how in one line."""
        try:
            return self.config_factory()
        except Exception as exc:
            raise ConfigFactoryFailed(
                f"task app {self.app_id!r}: its config factory raised {type(exc).__name__}: {exc}"
            ) from exc


class TaskAppRegistry:
    """Looks apps up by id or alias; entry points of group `synth_ai.task_apps` are loaded once,
    on the first lookup, each resolving to a `TaskAppEntry`."""

    def __init__(self) -> None:
        self._entries: dict[str, TaskAppEntry] = {}
        self._names: dict[str, str] = {}
        self._discovered = False
        self._lock = threading.Lock()

    def register(self, entry: TaskAppEntry) -> TaskAppEntry:
        with self._lock:
            if self._entries.get(entry.app_id) is entry:
                return entry
            for name in (entry.app_id, *entry.aliases):
                owner = self._names.get(name)
                if owner is not None:
                    raise ValueError(f"task app name {name!r} is already taken by {owner!r}")
            self._entries[entry.app_id] = entry
            for name in (entry.app_id, *entry.aliases):
                self._names[name] = entry.app_id
        return entry

    def get(self, name: str) -> TaskAppEntry:
        self.discover()
        app_id = self._names.get(name)
        if app_id is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"no task app named {name!r} (known: {known})")
        return self._entries[app_id]

    def lookup(self, name: str) -> TaskAppEntry | None:
        """The entry registered under a name, without discovering installed ones."""
        app_id = self._names.get(name)
        return self._entries.get(app_id) if app_id is not None else None

    def entries(self) -> builtins.list[TaskAppEntry]:
        """Every app: those registered in code and those installed."""
        self.discover()
        return self.registered()

    def registered(self) -> builtins.list[TaskAppEntry]:
        """The apps registered so far, without loading installed ones."""
        return sorted(self._entries.values(), key=lambda entry: entry.app_id)

    def list(self) -> builtins.list[TaskAppEntry]:
        """0.2.24's name for `registered`."""
        return self.registered()

    def __iter__(self) -> Iterator[TaskAppEntry]:
        return iter(self.registered())

    def clear(self) -> None:
        """Forget every app registered so far (installed ones are found again on lookup)."""
        with self._lock:
            self._entries.clear()
            self._names.clear()
            self._discovered = False

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = point.load()
                entry = (
                    loaded()
                    if callable(loaded) and not isinstance(loaded, TaskAppEntry)
                    else loaded
                )
                if not isinstance(entry, TaskAppEntry):
                    raise TypeError(f"resolved to {type(entry).__name__}, not TaskAppEntry")
                self.register(entry)
            except Exception as exc:
                logger.warning("skipping task app entry point %r: %s", point.name, exc)


registry = TaskAppRegistry()


def register_task_app(entry: TaskAppEntry) -> TaskAppEntry:
    """Add an app to the process-wide registry; answers the entry, so it can be kept as a name.
    `register_task_app(entry=...)` is 0.2.24's form of the same call."""
    return registry.register(entry)


def list_task_apps() -> list[TaskAppEntry]:
    return registry.entries()
