"""Artifact uploads, where the emitters have always imported them; they live in
`synth_ai.job_events`, which the client uploads with too."""

from synth_ai.job_events.upload import (
    CHUNK,
    ArtifactUploadError,
    file_chunks,
    file_chunks_sync,
    local_file,
    put_file,
    readable,
    refusal,
    upload_file,
    upload_params,
)

__all__ = [
    "CHUNK",
    "ArtifactUploadError",
    "file_chunks",
    "file_chunks_sync",
    "local_file",
    "put_file",
    "readable",
    "refusal",
    "upload_file",
    "upload_params",
]
