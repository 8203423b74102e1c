"""Job events: an event log, a live bus per job, SSE streams, and the client side."""

from typing import TYPE_CHECKING

from synth_ai.lazy_exports import lazy_exports

from .app import create_jobs_app
from .bus import JobBus, Subscription
from .delivery import RemoteEmitterError
from .emitter import Emitter, JobEmitter
from .log import JobEventLog
from .models import EventIn, JobEvent, JobState, finite_json, sse_name
from .remote import EmitterStats, RemoteEmitter
from .routes import JobsRoutes
from .service import JobsService
from .settings import StreamSettings

__all__ = [
    "Emitter",
    "EmitterStats",
    "EventIn",
    "JobBus",
    "JobEmitter",
    "JobEvent",
    "JobEventLog",
    "JobState",
    "JobsRoutes",
    "JobsService",
    "JobsWatcher",
    "MetricWindow",
    "RemoteEmitter",
    "RemoteEmitterError",
    "StreamSettings",
    "Subscription",
    "create_jobs_app",
    "finite_json",
    "sse_name",
]

# the watcher is the client's (synth_ai.client): loaded only when read, so the server never
# imports the client
__getattr__, __dir__ = lazy_exports(globals(), {"watcher": ("JobsWatcher", "MetricWindow")})

if TYPE_CHECKING:
    from .watcher import JobsWatcher, MetricWindow
