"""Coalesced metrics keep the order of seqs: a metric held back by the rate limit goes out
before any later event, so live ids only increase and each name's latest value arrives.

Through a real server (the reported case, many rounds) and, over any mix of metrics, logs and
ticks of the clock, through a bus and its subscription in-process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.jobs import JobBus, JobEvent, JobState, StreamSettings, create_jobs_app
from synth_ai.task import serve_in_background

from .test_jobs_bus_races import DONE, HEADERS, ROUNDS, follow, logs, new_job, post


def metric(name: str, value: float) -> dict[str, Any]:
    return {"type": "rl.step.metric", "data": {"name": name, "value": value}}


def test_a_held_back_metric_goes_out_before_later_events(tmp_path: Path) -> None:
    """Live ids increase: a metric held back by the rate limit goes before the log after it
    (it once came after: ids 1, 3, 2), so a client resuming from any id misses and repeats
    nothing, and the metric's latest value arrives."""
    settings_ = StreamSettings(end_grace_s=0.05, heartbeat_s=0.2, max_metric_hz=2.0)
    with serve_in_background(create_jobs_app(tmp_path / "j.db", settings=settings_)) as url:
        for round_ in range(ROUNDS):
            job_id = new_job(url)
            batches = [
                [metric("loss", 1.0)],
                [metric("loss", 2.0), metric("reward", 0.5)],  # loss held, reward behind it
                [*logs(1), metric("loss", 3.0)],  # the log behind the held loss, then its news
                # the end sends what is held at once; a log before it waits for the next tick
                *([[DONE]] if round_ % 2 else [logs(1), [DONE]]),
            ]

            async def scenario(job_id: str = job_id, batches: Any = batches) -> list[int]:
                opened = asyncio.Event()
                reader = asyncio.create_task(follow(url, job_id, opened))
                await opened.wait()
                for batch in batches:
                    await asyncio.to_thread(post, url, job_id, *batch)
                async with asyncio.timeout(10):
                    return await reader

            ids = asyncio.run(scenario())
            assert ids == sorted(set(ids)), ids
            page = httpx.get(
                f"{url}/api/jobs/{job_id}/events", params={"after": 0}, headers=HEADERS
            ).json()["events"]
            assert ids[0] == 1 and ids[-1] == page[-1]["seq"]
            last_loss = max(e["seq"] for e in page if e["data"].get("name") == "loss")
            assert last_loss in ids, "the latest loss was not delivered"


kinds = st.lists(
    st.one_of(
        st.tuples(st.just("metric"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("log"), st.just("")),
        st.tuples(st.just("tick"), st.just("")),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=kinds, max_names=st.sampled_from([2, 256]))
def test_live_delivery_is_in_seq_order_and_keeps_each_metrics_last_value(
    steps: list[tuple[str, str]], max_names: int
) -> None:
    """Any mix of metrics, logs and timer ticks, then the end: a subscriber sees increasing
    seqs, every non-metric, and the last value of each metric name (also when few names are
    tracked, so the hold overflows and goes out early)."""

    async def run() -> list[JobEvent]:
        bus = JobBus(
            "job_x",
            last_seq=0,
            state=JobState.RUNNING,
            max_metric_hz=1000.0,
            max_metric_names=max_names,
        )
        subscription = bus.subscribe()
        seq = 0
        for kind, name in steps:
            if kind == "tick":
                await asyncio.sleep(0.002)  # past the metric interval: held metrics are due
                continue
            seq += 1
            data = {"name": name, "value": seq} if kind == "metric" else {}
            event_type = "x.metric" if kind == "metric" else "system.log"
            bus.publish(JobEvent(seq=seq, job_id="job_x", type=event_type, data=data))
        bus.publish(JobEvent(seq=seq + 1, job_id="job_x", type="job.status", data=DONE["data"]))
        events = subscription.drain()
        bus.close()
        return events

    events = asyncio.run(run())
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    published = [(i + 1, k, n) for i, (k, n) in enumerate(s for s in steps if s[0] != "tick")]
    for seq, kind, name in published:
        last = max(s for s, k, n in published if (k, n) == (kind, name))
        if kind == "log" or seq == last:
            assert seq in seqs, (seq, kind, name)
    assert events[-1].state == JobState.SUCCEEDED


def test_the_rate_of_at_most_max_metric_names_names_is_kept() -> None:
    """20,000 distinct names: the least recently sent leave; every first value is sent."""

    async def run() -> tuple[int, int]:
        bus = JobBus(
            "job_x",
            last_seq=0,
            state=JobState.RUNNING,
            max_metric_names=256,
            subscriber_buffer=20_000,
        )
        subscription = bus.subscribe()
        for seq in range(1, 20_001):
            data = {"name": f"n{seq}", "value": seq}
            bus.publish(JobEvent(seq=seq, job_id="job_x", type="x.metric", data=data))
        sent = len(subscription.drain())
        bus.close()
        return bus.pacer.names, sent

    assert asyncio.run(run()) == (256, 20_000)
