"""How an offline stand-in says it could not answer, and how the framework counts it.

A stand-in that cannot answer a request (the math solver finds no problem it reads, a script
has no rule for it) still answers 200, so the app's rollout goes on and its transcript shows
why; the reply's text is `UNANSWERED` and the header `X-Stand-In-Unanswered: 1` marks it. The
stand-in tallies its calls per correlation id (the `cid` the framework puts on the inference
URL), and `POST /v1/stand-in/tally {"cids": [...]}` answers how many of those calls it could
not answer: `eval` and `check` ask after their rollouts (`count_unanswered`).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

UNANSWERED = "[offline stand-in: it cannot answer this request]"
UNANSWERED_HEADER = "X-Stand-In-Unanswered"
TALLY_PATH = "/v1/stand-in/tally"
MAX_CIDS = 10_000
"""Cids remembered, and cids one tally request may ask about."""


@dataclass(frozen=True, slots=True)
class Count:
    calls: int = 0
    unanswered: int = 0

    def __add__(self, other: Count) -> Count:
        return Count(self.calls + other.calls, self.unanswered + other.unanswered)


class Tally:
    """Calls and unanswered calls per cid, for the last `MAX_CIDS` cids seen."""

    def __init__(self, limit: int = MAX_CIDS) -> None:
        self.limit = limit
        self.total = Count()
        self._by_cid: OrderedDict[str, Count] = OrderedDict()

    def record(self, cid: str | None, answered: bool) -> None:
        one = Count(1, 0 if answered else 1)
        self.total += one
        if not cid:
            return
        self._by_cid[cid] = self._by_cid.pop(cid, Count()) + one
        while len(self._by_cid) > self.limit:
            self._by_cid.popitem(last=False)

    def of(self, cids: list[str]) -> Count:
        found = Count()
        for cid in set(cids):
            found += self._by_cid.get(cid, Count())
        return found

    async def route(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        cids = body.get("cids") if isinstance(body, dict) else None
        if not isinstance(cids, list) or not all(isinstance(c, str) for c in cids):
            return _refused('the body must be {"cids": [strings]}')
        if len(cids) > self.limit:
            return _refused(f"at most {self.limit} cids per request")
        count = self.of(cids)
        return JSONResponse(
            {"stand_in": True, "calls": count.calls, "unanswered": count.unanswered}
        )


def _refused(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=400
    )


def unanswered_message() -> dict[str, Any]:
    return {"role": "assistant", "content": UNANSWERED}


def on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tally_url(inference_url: str) -> str:
    parts = urlsplit(inference_url)
    return f"{parts.scheme}://{parts.netloc}{TALLY_PATH}"


async def count_unanswered(inference_url: str | None, cids: list[str]) -> Count | None:
    """What the stand-in at `inference_url` tallied for `cids`; None when it is not an
    offline stand-in (a real endpoint answers the tally path with an error) or is gone. Only a
    loopback URL is asked: stand-ins are served on this machine, and a vendor is never sent
    the run's cids."""
    if not inference_url or not cids or not on_loopback(inference_url):
        return None
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(tally_url(inference_url), json={"cids": cids[:MAX_CIDS]})
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if (
        response.status_code != 200
        or not isinstance(data, dict)
        or data.get("stand_in") is not True
    ):
        return None
    calls, unanswered = data.get("calls"), data.get("unanswered")
    if not isinstance(calls, int) or not isinstance(unanswered, int):
        return None
    return Count(calls, unanswered)
