"""Finding a task app from what a user types: a registered name, a file or `module:attribute`.

`my_app.py` (or `path/my_app.py:app_id` when the file registers several), and
`package.module:attribute` where the attribute is a `TaskAppEntry`, a config factory or a
`TaskAppConfig`. Every command that takes an app goes through `find_task_app`, so each form
works everywhere, `--reload` included (the reference is what the reloader is given).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import TaskAppConfig
from .registry import ConfigFactoryFailed, TaskAppEntry, registry

logger = logging.getLogger(__name__)


class AppNotFound(KeyError):
    """No task app answers to a reference; the message says what was tried and what exists."""

    def __str__(self) -> str:
        return str(self.args[0])


class AppLoadFailed(AppNotFound):
    """The app's code raised while it was imported; the message is one line, `file:line:
    Error: message`, and the traceback is logged at debug level (`synth-ai -v`)."""


def load_failure(exc: BaseException, path: Path | None) -> AppLoadFailed:
    """One line naming where an import failed: the app file's deepest frame, else the deepest
    frame outside the import machinery (a SyntaxError names its own file and line)."""
    logger.debug("loading the task app failed", exc_info=exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
        message = exc.msg
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "<frozen" not in f.filename]
        mine = [f for f in frames if path is not None and Path(f.filename) == path]
        chosen = mine or frames
        where = f"{chosen[-1].filename}:{chosen[-1].lineno}" if chosen else str(path)
        message = str(exc)
    return AppLoadFailed(f"{where}: {type(exc).__name__}: {' '.join(message.split())[:300]}")


def find_task_app(reference: str) -> TaskAppEntry:
    """The app a reference names, registered so that later lookups by its id find it too."""
    location, _, name = reference.partition(":")
    if location.endswith(".py"):
        entry = _from_file(Path(location), name or None)
    elif name:
        entry = _from_module(location, name)
    else:
        try:
            return registry.get(reference)
        except KeyError as exc:
            raise AppNotFound(
                f"{exc.args[0]}; a file (app.py) or module:attribute works too"
            ) from None
    known = registry.lookup(entry.app_id)
    if known is not None and known.config_factory == entry.config_factory:
        return known  # the same app, reached another way (or again: serve resolves it twice)
    try:
        return registry.register(entry)
    except ValueError as exc:
        raise AppNotFound(f"{reference}: {exc}") from None


@dataclass(frozen=True, eq=False)
class GivenConfig:
    """The factory of an app given as a `TaskAppConfig`: equal to another made from the same
    config, so a reference resolved twice finds the entry the first resolution registered."""

    config: TaskAppConfig

    def __call__(self) -> TaskAppConfig:
        return self.config

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GivenConfig) and other.config is self.config

    def __hash__(self) -> int:
        return id(self.config)


def entry_of(value: Any, where: str) -> TaskAppEntry:
    """A `TaskAppEntry` from an entry, a config, or a factory of either."""
    if isinstance(value, TaskAppEntry):
        return value
    if isinstance(value, TaskAppConfig):
        return TaskAppEntry(value.app_id, GivenConfig(value), description=value.description)
    if callable(value):
        try:
            made = value()
        except Exception as exc:
            raise ConfigFactoryFailed(
                f"{where}: the config factory raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(made, TaskAppEntry):
            return made
        if isinstance(made, TaskAppConfig):
            return TaskAppEntry(made.app_id, value, description=made.description)
        raise AppNotFound(f"{where} returned {type(made).__name__}, not a TaskAppConfig")
    raise AppNotFound(
        f"{where} is a {type(value).__name__}: expected a TaskAppEntry, a TaskAppConfig or "
        "a function returning one"
    )


def _from_module(module_name: str, attribute: str) -> TaskAppEntry:
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise AppNotFound(f"no module {module_name!r} ({exc})") from None
        raise load_failure(exc, None) from exc
    except Exception as exc:
        raise load_failure(exc, None) from exc
    if not hasattr(module, attribute):
        raise AppNotFound(f"module {module_name!r} has no attribute {attribute!r}")
    return entry_of(getattr(module, attribute), f"{module_name}:{attribute}")


def _from_file(path: Path, name: str | None) -> TaskAppEntry:
    if not path.is_file():
        raise AppNotFound(f"no file {str(path)!r}")
    try:
        module = import_file(path)
    except Exception as exc:
        raise load_failure(exc, path.resolve()) from exc
    # what the file registered (its factories live in it), and entries it holds as names;
    # installed apps are not looked for: loading them all only to skip them costs every start
    found = {
        entry.app_id: entry
        for entry in registry.registered()
        if getattr(entry.config_factory, "__module__", None) == module.__name__
    }
    found |= {
        value.app_id: value for value in vars(module).values() if isinstance(value, TaskAppEntry)
    }
    if name is not None:
        for entry in found.values():
            if name == entry.app_id or name in entry.aliases:
                return entry
        if hasattr(module, name):
            return entry_of(getattr(module, name), f"{path}:{name}")
        raise AppNotFound(f"{path} has no task app {name!r} (it has: {_names(found)})")
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise AppNotFound(
            f"{path} defines no task app: register one with register_task_app(...) or "
            "name its factory as path.py:function"
        )
    raise AppNotFound(f"{path} has several task apps; add one: {_choices(path, found)}")


def import_file(path: Path) -> ModuleType:
    """Import a file as the module its name says (its folder first on `sys.path`, so it can
    import its neighbours), unless that name is already another module; then under its own."""
    path = path.resolve()
    stem = path.stem
    existing = sys.modules.get(stem)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
        return existing
    if existing is None and stem.isidentifier():
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.find_spec(stem)
        if spec is not None and spec.origin and Path(spec.origin).resolve() == path:
            return import_module(stem)
    unique = f"synth_task_app_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def _names(found: dict[str, TaskAppEntry]) -> str:
    return ", ".join(sorted(found)) or "none"


def _choices(path: Path, found: dict[str, TaskAppEntry]) -> str:
    return ", ".join(f"{path}:{app_id}" for app_id in sorted(found))


def get_task_app(reference: str) -> TaskAppEntry:
    """The app a reference names: an id or alias registered (or installed), a file `app.py`
    (`app.py:app_id` when it has several) or `module:attribute`. `KeyError` says what exists.
    """
    return find_task_app(reference)
