"""The sync client's old path; it lives in `synth_ai.client`."""

from synth_ai.client.sync import SyncTaskAppClient

__all__ = ["SyncTaskAppClient"]
