"""The metric pacer on a virtual clock (synth_ai/jobs/pacing.py): what a stream is sent keeps
the seq order, no metric name and split is sent more often than `max_hz` until the job ends,
each one's latest value is always sent, nothing else is dropped, and nothing waits longer than
one interval. The times are exact and take no wall-clock time; the streams over HTTP
(test_jobs_stream.py, test_emit_points.py) show the same end to end, without timing it."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.jobs.models import JobEvent
from synth_ai.jobs.pacing import MetricPacer, metric_key
from synth_ai.jobs.subscription import TIMER_SLACK_S

from .virtual_clock import VirtualClockLoop

HZ = 4.0
INTERVAL_S = 1 / HZ
EPSILON = 1e-9


@dataclass(frozen=True)
class Offer:
    after_s: float
    """How long after the previous event this one comes."""
    metric: bool
    name: str
    split: str


offers = st.lists(
    st.builds(
        Offer,
        after_s=st.sampled_from([0.0, 0.001, 0.01, 0.1, 0.249, 0.25, 0.251, 0.6]) | st.floats(0, 1),
        metric=st.sampled_from([True, True, True, False]),
        name=st.sampled_from(["loss", "reward"]),
        split=st.sampled_from(["train", "eval"]),
    ),
    min_size=1,
    max_size=80,
)


@dataclass(frozen=True)
class Paced:
    offered: list[tuple[float, JobEvent]]
    sent: list[tuple[float, JobEvent]]
    ended_at: float
    """When the terminal status was offered (`final`: everything held goes at once)."""


def pace(batch: list[Offer], end_after_s: float) -> Paced:
    loop = VirtualClockLoop()
    offered: list[tuple[float, JobEvent]] = []
    sent: list[tuple[float, JobEvent]] = []

    async def main() -> float:
        pacer = MetricPacer(lambda event: sent.append((loop.time(), event)), max_hz=HZ)
        seq = 0
        for offer in batch:
            await asyncio.sleep(offer.after_s)
            seq += 1
            data = {"name": offer.name, "split": offer.split, "value": seq}
            kind = "rl.step.metric" if offer.metric else "system.log"
            event = JobEvent(seq=seq, job_id="j", type=kind, data=data)
            offered.append((loop.time(), event))
            pacer.offer(event)
        await asyncio.sleep(end_after_s)
        final = JobEvent(seq=seq + 1, job_id="j", type="job.status", data={"state": "succeeded"})
        offered.append((loop.time(), final))
        pacer.offer(final, final=True)
        pacer.close()
        return loop.time()

    try:
        ended_at = loop.run_until_complete(main())
    finally:
        loop.close()
    return Paced(offered, sent, ended_at)


@settings(max_examples=300, deadline=None)
@given(batch=offers, end_after_s=st.sampled_from([0.0, 0.1, 0.3, 1.0]))
def test_the_pacer_keeps_order_rate_and_every_latest_value(
    batch: list[Offer], end_after_s: float
) -> None:
    paced = pace(batch, end_after_s)
    sent_seqs = [event.seq for _, event in paced.sent]
    assert sent_seqs == sorted(set(sent_seqs)), "sent out of seq order, or twice"
    assert paced.sent[-1][1].type == "job.status"  # nothing after the terminal status
    sent = set(sent_seqs)
    metrics = [(at, e) for at, e in paced.offered if e.sse_name == "metric"]
    for _, event in paced.offered:
        if event.sse_name != "metric":
            assert event.seq in sent, f"{event.type} {event.seq} was dropped"
    for _, event in metrics:
        if event.seq not in sent:  # only a newer value of its own series replaces a metric
            newer = [e.seq for _, e in metrics if metric_key(e) == metric_key(event)]
            assert max(newer) > event.seq and max(newer) in sent, event.seq
    sent_at = {event.seq: at for at, event in paced.sent}
    for at, event in paced.offered:  # nothing waits more than one interval (or the end)
        if event.seq in sent:
            assert sent_at[event.seq] <= min(at + INTERVAL_S, paced.ended_at) + EPSILON
    by_series: dict[tuple[str, str], list[float]] = {}
    for at, event in paced.sent:
        if event.sse_name == "metric" and at < paced.ended_at:
            by_series.setdefault(metric_key(event), []).append(at)
    for series, times in by_series.items():
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap >= INTERVAL_S - TIMER_SLACK_S - EPSILON for gap in gaps), (series, gaps)


def test_a_100hz_series_is_sent_at_max_hz_and_ends_with_its_last_value() -> None:
    """The case the end-to-end streams run: 100 Hz for two seconds, two series."""
    batch = [
        Offer(0.01 if i % 2 == 0 else 0.0, True, "loss", split)
        for i, split in enumerate(["train", "eval"] * 200)
    ]
    paced = pace(batch, 0.0)
    for split in ("train", "eval"):
        series = [(at, e) for at, e in paced.sent if e.data.get("split") == split]
        assert series[-1][1].data["value"] == max(
            e.data["value"] for _, e in paced.offered if e.data.get("split") == split
        )
        # one at once, then one per interval over ~2 s, then the last one at the end
        assert 2 * HZ <= len(series) <= 2 * HZ + 2, len(series)
