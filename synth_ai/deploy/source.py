"""What the image is made of: this package's own source and the requirements it declares.

Whatever the install (a checkout, an editable install, a wheel unpacked by pip or uvx), the code
that runs here is the code that gets mounted, and the requirements are read from the installed
distribution's metadata (or, with no distribution installed, from the checkout's
`pyproject.toml`). The package's own name is never looked up on the index: a release of that
name there is a different project.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from synth_ai import __version__

DIST_NAME = "synth-ai"
REMOTE_ROOT = "/root"
"""Where Modal puts local Python sources in a container; it is on the container's PYTHONPATH."""

_EXTRA_CLAUSE = re.compile(r"""\(?\s*extra\s*==\s*["']([^"']+)["']\s*\)?""")


class SourceError(Exception):
    """The image cannot be described from this install (a module or metadata is missing)."""


@dataclass(frozen=True, slots=True)
class LocalSource:
    """One top-level module, from where it is here to where it goes in the container."""

    module: str
    local_path: str
    remote_path: str
    is_package: bool


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0])


def requirement_extras(requirement: str) -> tuple[str, ...]:
    """The `[a,b]` extras a requirement asks of its distribution."""
    head = requirement.split(";", 1)[0]
    found = re.search(r"\[([^\]]*)\]", head)
    return tuple(e.strip() for e in found.group(1).split(",") if e.strip()) if found else ()


def split_marker(requirement: str) -> tuple[str, str | None, str]:
    """`(requirement, extra or None, the rest of its marker)` of one `Requires-Dist` line."""
    spec, _, marker = requirement.partition(";")
    found = _EXTRA_CLAUSE.search(marker)
    if not found:
        return spec.strip(), None, marker.strip()
    rest = f"{marker[: found.start()]} {marker[found.end() :]}"
    rest = re.sub(r"\band\s+and\b", "and", rest.strip())
    rest = re.sub(r"^and\s+|\s+and$", "", rest)
    return spec.strip(), found.group(1), rest.strip()


def select_requirements(requires: list[str], extras: tuple[str, ...], own_name: str) -> list[str]:
    """The requirements of a distribution with `extras`. A requirement on the distribution
    itself (`pkg[otlp]; extra == "all"`) turns on those extras here instead of being left to
    the index."""
    own = normalize(own_name)
    active = {normalize(e) for e in extras}
    parsed = [split_marker(line) for line in requires]
    growing = True
    while growing:
        growing = False
        for spec, extra, _ in parsed:
            if requirement_name(spec) != own or (
                extra is not None and normalize(extra) not in active
            ):
                continue
            more = {normalize(e) for e in requirement_extras(spec)} - active
            if more:
                active |= more
                growing = True
    selected: list[str] = []
    for spec, extra, marker in parsed:
        if requirement_name(spec) == own or (extra is not None and normalize(extra) not in active):
            continue
        text = f"{spec}; {marker}" if marker else spec
        if text not in selected:
            selected.append(text)
    return selected


def pyproject_requirements(root: Path) -> list[str]:
    """`Requires-Dist`-like lines from a checkout's pyproject.toml (no distribution installed)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines += [f'{req}; extra == "{extra}"' for req in requirements]
    return lines


def own_requirements(extras: tuple[str, ...] = ()) -> list[str]:
    """This package's requirements (with `extras`) from the metadata of the installed copy."""
    try:
        dist = distribution(DIST_NAME)
    except PackageNotFoundError:
        dist = None
    if dist is not None and dist.version == __version__:
        return select_requirements(list(dist.requires or []), extras, DIST_NAME)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return select_requirements(pyproject_requirements(checkout), extras, DIST_NAME)
    found = f"{DIST_NAME} {dist.version} is installed" if dist else f"no {DIST_NAME} is installed"
    raise SourceError(
        f"cannot read the requirements of this synth-ai ({__version__}): {found} and no "
        "pyproject.toml is next to its source"
    )


def app_distribution(module: str) -> str | None:
    """The installed distribution shipping top-level `module`, when it is not this package."""
    names = packages_distributions().get(module, [])
    others = [name for name in names if normalize(name) != normalize(DIST_NAME)]
    return others[0] if others and len(others) == len(names) else None


def shipped_by_this_package(module: str) -> bool:
    return normalize(DIST_NAME) in {normalize(n) for n in packages_distributions().get(module, [])}


def app_requirements(module: str) -> list[str]:
    """Requirements of the distribution shipping the app, this package left out (its source is
    mounted, whatever that distribution pins)."""
    name = app_distribution(module)
    if name is None:
        return []
    return [
        req
        for req in select_requirements(list(distribution(name).requires or []), (), name)
        if requirement_name(req) != normalize(DIST_NAME)
    ]


def local_source(module: str) -> LocalSource:
    """Where top-level `module` is imported from here, and where Modal will put it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise SourceError(f"cannot locate module {module!r}: {exc}") from exc
    if spec is None:
        raise SourceError(f"module {module!r} is not importable here")
    if spec.submodule_search_locations:
        locations = [p for p in spec.submodule_search_locations if Path(p).is_dir()]
        if len(locations) != 1:
            raise SourceError(f"package {module!r} is spread over {locations or 'no directory'}")
        return LocalSource(
            module, str(Path(locations[0]).resolve()), f"{REMOTE_ROOT}/{module}", True
        )
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise SourceError(f"module {module!r} is not Python source ({spec.origin})")
    path = Path(spec.origin).resolve()
    return LocalSource(module, str(path), f"{REMOTE_ROOT}/{path.name}", False)
