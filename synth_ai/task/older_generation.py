"""How `check` judges an app of an older generation (0.2.x, whose `/info` names `rubrics` and
no `contract_version`): by what that generation promised its consumers. Such an app answers 400
to a request without a key, FastAPI's `{"detail": ...}` instead of the error envelope, steps
with `info: null` and task-info fields of other shapes. The rules every generation keeps (a
key is required, the cid comes back, no key material in a refusal, bad input a 4xx, an unknown
route a 404) are checked all the same; details say where the older contract was applied.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

OLDER = "an older generation (0.2.x)"
KEYLESS = (400, 401)
"""What an older generation answers a request without a key."""


async def is_older_generation(http: httpx.AsyncClient, auth: dict[str, str]) -> bool:
    """`/info` answers a JSON object shaped as 0.2.x's: `rubrics`, and no `contract_version`
    (an app of this generation that lacks `contract_version` is not taken for an old one)."""
    try:
        response = await http.get("/info", headers=auth)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(data, dict) and "rubrics" in data and "contract_version" not in data


def with_step_info(data: dict[str, Any]) -> dict[str, Any]:
    """A rollout answer with each step's `info: null` read as `{}`, as 0.2.x wrote it."""
    found = copy.deepcopy(data)
    for trajectory in found.get("trajectories") or []:
        for step in trajectory.get("steps") or [] if isinstance(trajectory, dict) else []:
            if isinstance(step, dict) and step.get("info") is None:
                step["info"] = {}
    return found
