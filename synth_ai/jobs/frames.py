"""One job's event stream as frames: subscribe, replay what the client missed, then go live.

Replay comes from the ring when it reaches back to the client's cursor, else from the log page
by page. Live, each turn of a stream takes everything delivered since its last turn and sends
it as one chunk (at most 64 KiB): under load the chunks grow, so the cost of a send is shared by
many events. A keep-alive goes out after `heartbeat` seconds without a write, timed by one timer
per stream rather than one per wait. Nothing falls between replay and live (the subscription is
made before the replay is read), and nothing is skipped: when the log does not answer in time
the stream says `reset` and ends. The grant a stream was opened with (a stream token's session
or key, or the key it presented) is checked again every `heartbeat` seconds, busy or idle: once
it has ended (sign-out, a key rotated away) the stream says `revoked` and ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from synth_ai.storage import StorageError

from .bus import JobBus, Subscription
from .service import JobsService
from .sse import KEEP_ALIVE, control_frame, event_frame, retry_frame
from .subscription import TIMER_SLACK_S

logger = logging.getLogger("synth_ai.jobs.frames")

StillAllowed = Callable[[], Awaitable[bool]]
"""Whether the grant a stream was opened with still stands (may read the sessions table)."""

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
    still_allowed: StillAllowed | None = None,
) -> AsyncIterator[bytes]:
    """Subscribe first, then replay from the ring or the log, then go live; no gap."""
    loop = asyncio.get_running_loop()
    closes_at: float | None = None
    checked_at = loop.time()
    try:
        yield retry_frame(service.settings.retry_ms)
        watermark = since
        replay = bus.ring_after(since)
        cursor = since
        while replay is None:  # the ring does not reach back: page through the log
            try:
                async with asyncio.timeout(service.settings.replay_timeout_s):
                    page = await service.events(bus.job_id, cursor, REPLAY_PAGE, names)
            except (TimeoutError, StorageError) as exc:
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
        wanted = [event_frame(e) for e in replay if subscription.wants(e)]
        for start in range(0, len(wanted), REPLAY_FRAMES_PER_CHUNK):
            if start:
                await asyncio.sleep(0)  # sends rarely wait: let other streams have a turn
            yield b"".join(wanted[start : start + REPLAY_FRAMES_PER_CHUNK])
        if replay:
            watermark = replay[-1].seq
        if bus.state.terminal:
            closes_at = loop.time() + service.settings.end_grace_s
        wrote_at = loop.time()
        while True:
            if still_allowed is not None and loop.time() >= checked_at + heartbeat - TIMER_SLACK_S:
                refusal = await _revoked(still_allowed, service.settings.replay_timeout_s)
                if refusal is not None:
                    yield refusal
                    return
                checked_at = loop.time()
            # everything that came since the last turn goes out in one send (under load, many
            # frames in each), at most CHUNK_BYTES, so a client that stops reading pins at most
            # about one chunk in the transport
            chunk = subscription.take(CHUNK_BYTES, watermark)
            if chunk:
                yield chunk
                wrote_at = loop.time()
                if closes_at is None and subscription.past_terminal:
                    closes_at = wrote_at + service.settings.end_grace_s
                if subscription.ready() and not subscription.lagged:
                    await asyncio.sleep(0)  # more than a chunk waits: others' turn first
                    continue
            if subscription.lagged:
                yield control_frame(
                    "lagged",
                    {
                        "last_seq": bus.last_seq,
                        "message": "stream fell behind; resume from your last id",
                    },
                )
                return
            if closes_at is None and subscription.past_terminal:
                closes_at = loop.time() + service.settings.end_grace_s
            due = wrote_at + heartbeat
            if still_allowed is not None:
                due = min(due, checked_at + heartbeat)
            deadline = due if closes_at is None else min(due, closes_at)
            if await subscription.wait_until(deadline):
                continue
            if closes_at is not None and deadline == closes_at:
                # the grace ran out: end, with no keep-alive just before it
                yield control_frame("end", {"state": bus.state.value, "last_seq": bus.last_seq})
                return
            if loop.time() < wrote_at + heartbeat - TIMER_SLACK_S:
                continue  # woken to check the grant, with a keep-alive not yet due
            yield KEEP_ALIVE
            if names and "heartbeat" in names:  # a frame a browser's handler can see
                yield control_frame("heartbeat", {"alive": True, "ts": time.time()})
            wrote_at = loop.time()
    finally:
        bus.unsubscribe(subscription)


async def _revoked(still_allowed: StillAllowed, timeout_s: float) -> bytes | None:
    """The frame that ends a stream whose grant has ended, or None while it stands. A check
    that does not answer in time ends the stream with `reset`: the client resumes from its
    cursor and is checked again when it opens."""
    try:
        async with asyncio.timeout(timeout_s):
            allowed = await still_allowed()
    except (TimeoutError, StorageError) as exc:
        logger.warning("could not check a stream's grant (%s); ending it", type(exc).__name__)
        return control_frame(
            "reset",
            {
                "dropped_events": False,
                "message": "the server could not check this stream's key or session;"
                " resume from your last id",
            },
        )
    if allowed:
        return None
    return control_frame(
        "revoked",
        {
            "code": "unauthorised",
            "message": "The session or key this stream was opened with has ended.",
        },
    )
