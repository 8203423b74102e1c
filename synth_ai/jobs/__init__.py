"""Job events: an event log, a live bus per job, SSE streams, and the client side."""

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
from .watcher import JobsWatcher, MetricWindow

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
