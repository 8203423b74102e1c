"""`JobsWatcher` at its old path; it lives in `synth_ai.client`."""

from synth_ai.client.watcher import (
    KIND_LABELS,
    TYPE_PREFIXES,
    Hook,
    JobsWatcher,
    MetricWindow,
    kind_of_type,
)

__all__ = [
    "KIND_LABELS",
    "TYPE_PREFIXES",
    "Hook",
    "JobsWatcher",
    "MetricWindow",
    "kind_of_type",
]
