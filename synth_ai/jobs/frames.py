"""One job's event stream as frames: subscribe, replay what the client missed, then go live.

Replay comes from the ring when it reaches back to the client's cursor, else from the log page
by page; live events are sent in chunks of at most 64 KiB. Nothing falls between replay and live
(the subscription is made before the replay is read), and nothing is skipped: when the log does
not answer in time the stream says `reset` and ends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator

from .bus import JobBus, Subscription
from .service import JobsService
from .sse import KEEP_ALIVE, control_frame, event_frame, retry_frame

REPLAY_PAGE = 500
REPLAY_FRAMES_PER_CHUNK = 64
CHUNK_BYTES = 64 * 1024


async def stream_frames(
    service: JobsService,
    bus: JobBus,
    subscription: Subscription,
    since: int,
    names: list[str] | None,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """Subscribe first, then replay from the ring or the log, then go live; no gap."""
    loop = asyncio.get_running_loop()
    closes_at: float | None = None
    try:
        yield retry_frame(service.settings.retry_ms)
        watermark = since
        replay = bus.ring_after(since)
        cursor = since
        while replay is None:  # the ring does not reach back: page through the log
            try:
                async with asyncio.timeout(service.settings.replay_timeout_s):
                    page = await service.events(bus.job_id, cursor, REPLAY_PAGE, names)
            except (TimeoutError, sqlite3.Error) as exc:
                # never jump ahead: say so and end, so the client resumes from its own
                # cursor once the log answers again
                yield control_frame(
                    "reset",
                    {
                        "state": bus.state.value,
                        "dropped_events": False,
                        "last_seq": bus.last_seq,
                        "message": f"the event log is not answering ({type(exc).__name__});"
                        " resume from your last id",
                    },
                )
                return
            wanted = [event_frame(e) for e in page if subscription.wants(e)]
            for start in range(0, len(wanted), REPLAY_FRAMES_PER_CHUNK):
                yield b"".join(wanted[start : start + REPLAY_FRAMES_PER_CHUNK])
            if page:
                watermark = cursor = page[-1].seq
            if len(page) < REPLAY_PAGE:
                replay = []
        for event in replay:
            if subscription.wants(event):
                yield event_frame(event)
            watermark = event.seq
        if bus.state.terminal:
            closes_at = loop.time() + service.settings.end_grace_s
        while True:
            grace_left = None if closes_at is None else closes_at - loop.time()
            timeout = heartbeat if grace_left is None else min(heartbeat, grace_left)
            if timeout <= 0 or not await subscription.wait(timeout):
                # the wait was for the grace to run out (timers may fire a little early, so
                # the clock is not asked again): end, with no keep-alive just before it
                if grace_left is not None and grace_left <= heartbeat:
                    yield control_frame("end", {"state": bus.state.value, "last_seq": bus.last_seq})
                    return
                yield KEEP_ALIVE
                if names and "heartbeat" in names:  # a frame a browser's handler can see
                    yield control_frame("heartbeat", {"alive": True, "ts": time.time()})
                continue
            # what is buffered goes out in few sends, each at most CHUNK_BYTES, so a client
            # that stops reading pins at most about one chunk in the transport
            batch: list[bytes] = []
            size = 0
            for event in subscription.drain():
                if event.seq <= watermark:
                    continue  # already replayed
                frame = event_frame(event)
                if batch and size + len(frame) > CHUNK_BYTES:
                    yield b"".join(batch)
                    batch, size = [], 0
                batch.append(frame)
                size += len(frame)
                if event.state is not None and event.state.terminal and closes_at is None:
                    closes_at = loop.time() + service.settings.end_grace_s
            if batch:
                yield b"".join(batch)
            if subscription.lagged:
                yield control_frame(
                    "lagged",
                    {
                        "last_seq": bus.last_seq,
                        "message": "stream fell behind; resume from your last id",
                    },
                )
                return
    finally:
        bus.unsubscribe(subscription)
