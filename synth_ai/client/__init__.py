"""The clients users import: task-app routes and jobs routes on one object (`TaskAppClient`,
and `SyncTaskAppClient` for code without asyncio), a job's events streamed live
(`stream_job`), and `JobsWatcher`, which follows a job to its end.

The jobs server and the task framework import nothing from here.
"""

from synth_ai.task.answers import TaskAppClientError

from .job_stream import JobStreamError, stream_job
from .sync import SyncTaskAppClient
from .task_app import TaskAppClient
from .watcher import JobsWatcher, MetricWindow

__all__ = [
    "JobStreamError",
    "JobsWatcher",
    "MetricWindow",
    "SyncTaskAppClient",
    "TaskAppClient",
    "TaskAppClientError",
    "stream_job",
]
