"""Writing a project from the template: each file's `{name}`, `{module}` and
`{synth_requirement}` filled in (the template's literal braces are doubled, as `str.format`
wants)."""

from __future__ import annotations

import re
from pathlib import Path

from .requirement import synth_requirement

TEMPLATE = Path(__file__).with_name("template")
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
RENAMED = {"app.py": "{module}.py"}
SUFFIX = ".tmpl"
"""Template files end in it, so no tool takes them for the project's own code."""


class ProjectExists(FileExistsError):
    pass


def create_project(name: str, parent: Path, requirement: str | None = None) -> Path:
    """A new project folder `parent/name`; raises `ValueError` for a bad name and
    `ProjectExists` rather than overwrite anything. `requirement`: how the project depends on
    synth-ai (default: as this one was installed, `requirement.py`)."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name[:64]!r} is not a project name: lowercase letters, digits, - and _, "
            "starting with a letter"
        )
    root = parent / name
    if root.exists():
        raise ProjectExists(f"{root} already exists")
    fields = {
        "name": name,
        "module": name.replace("-", "_"),
        "synth_requirement": requirement or synth_requirement(),
    }
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE).as_posix().removesuffix(SUFFIX)
        target = root / RENAMED.get(relative, relative).format(**fields)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text().format(**fields))
    return root
