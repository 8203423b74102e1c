"""The job events' wire contract (DESIGN 5): the event models and the artifact upload, shared by
the jobs server, the emitters and the client, so none of them imports another."""

from .models import EventIn, JobEvent, JobState, finite_json, sse_name
from .upload import ArtifactUploadError, upload_file

__all__ = [
    "ArtifactUploadError",
    "EventIn",
    "JobEvent",
    "JobState",
    "finite_json",
    "sse_name",
    "upload_file",
]
