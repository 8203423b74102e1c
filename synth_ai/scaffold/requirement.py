"""The requirement a new project writes for this package: the form it was installed from.

The name `synth-ai` on the package index may be another project, so an install from a
checkout, a wheel or a VCS URL is written as that (PEP 610's `direct_url.json` says which):
`synth-ai @ file:///path`, `synth-ai @ file:///.../synth_ai-X-py3-none-any.whl`,
`synth-ai @ git+https://...@<commit>`. Only an install from an index writes the index name,
pinned to this version.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from synth_ai import __version__

DISTRIBUTION = "synth-ai"


def requirement_from(direct_url: dict[str, Any] | None) -> str:
    """The requirement for an install described by `direct_url` (None: from an index)."""
    url = direct_url.get("url") if direct_url else None
    if not direct_url or not isinstance(url, str):
        return f"{DISTRIBUTION}=={__version__}"
    vcs = direct_url.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):
        revision = vcs.get("commit_id") or vcs.get("requested_revision")
        url = f"{vcs['vcs']}+{url}" + (f"@{revision}" if revision else "")
    subdirectory = direct_url.get("subdirectory")
    if isinstance(subdirectory, str) and subdirectory:
        url += f"#subdirectory={subdirectory}"
    return f"{DISTRIBUTION} @ {url}"


def installed_direct_url() -> dict[str, Any] | None:
    """This install's `direct_url.json`; for a source tree on `sys.path` with no install,
    the checkout it is in, as a directory."""
    try:
        text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        checkout = Path(__file__).resolve().parents[2]
        if (checkout / "pyproject.toml").is_file():
            return {"url": checkout.as_uri(), "dir_info": {}}
        return None
    if text is None:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def synth_requirement() -> str:
    return requirement_from(installed_direct_url())
