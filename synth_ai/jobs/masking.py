"""Passwords in URLs a job was configured with (`http://user:password@host/`), masked before
the config is stored, so no answer (snapshot, list, dashboard) and no copy of the database
holds them; the job itself runs with the URL as given."""

from __future__ import annotations

import re
from typing import Any

from synth_ai.task.access_log import MASK

USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#@]*@")


def mask_passwords(value: Any) -> Any:
    """`value` (JSON) with the password of every URL in it replaced by `***`, as printed URLs
    are (`DatabaseURL`)."""
    if isinstance(value, str):
        return USERINFO.sub(rf"\1:{MASK}@", value)
    if isinstance(value, dict):
        return {key: mask_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_passwords(item) for item in value]
    return value
