"""The OpenAPI 3.1 document of the jobs server (DESIGN.md 5), generated from the route models.

Requests are described by the models the routes validate with (`CreateJob`, `EventIn`);
answers by the models in `answers.py`, which spell out the JSON the routes write. Every 4xx is the
error envelope of task apps, `{"detail": {"error": {code, message, ...}}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import models_json_schema

from synth_ai import __version__
from synth_ai.task.contracts import ErrorEnvelope
from synth_ai.task.openapi import error_responses, json_content, schema_ref

from .answers import (
    ArtifactList,
    EventBatch,
    EventPage,
    EventPayload,
    Heartbeat,
    Job,
    JobList,
    Seqs,
    StreamControl,
    StreamToken,
)
from .models import SSE_NAMES, EventIn
from .routes import MAX_EVENTS_PER_POST, MAX_SEQ, CreateJob

_REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {
    "400": "Malformed request (for example invalid JSON)",
    "401": "Missing or invalid API key (or stream token)",
    "403": "The stream token is for another job",
    "404": "No such job (or no such artifact)",
    "409": "The job has finished: its state is final (or has as many artifacts as it may keep)",
    "413": "Request body too large (or past an artifact bound: see the upload)",
    "415": "Unsupported content type",
    "422": "Request failed validation",
    "429": "Too many open streams (see Retry-After)",
    "503": "No API key configured on the server, or the event log is unavailable (see Retry-After)",
}
_AUTH_ERRORS = ("401", "503")
# streams and artifact downloads also take a job's stream token (a browser cannot set headers)
_READER_SECURITY: list[dict[str, list[str]]] = [
    {"ApiKeyHeader": []},
    {"Bearer": []},
    {"StreamToken": []},
]
_BODY_ERRORS = ("400", "413", "415", "422")
# `types`: SSE names or dotted types, comma-separated, at most 32 (what the routes accept)
_TYPE_NAME = rf"(?:{'|'.join(SSE_NAMES)}|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+)"
_TYPES_PATTERN = rf"^{_TYPE_NAME}(?:,{_TYPE_NAME}){{0,31}}$"
# an artifact name as `artifacts.valid_name` has it (with maxLength 128), spelt without
# look-ahead: a dot is never followed by another, so no `..`
ARTIFACT_NAME = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?$"


def _errors(*statuses: str) -> dict[str, Any]:
    return error_responses(_ERROR_STATUSES, *statuses)


def _ok(description: str, model: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": json_content(schema_ref(model))}}


def _frame(events: Sequence[str], payload: str, *, with_id: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data", *(["id"] if with_id else [])],
        "properties": {
            "event": {"enum": list(events)},
            **({"id": {"type": "string", "pattern": "^[0-9]+$"}} if with_id else {}),
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": schema_ref(payload),
            },
        },
    }


# one frame of a stream as an EventSource client reads it (`retry:` and `: keep-alive` lines
# carry no data, so they are no events); `data` is one line of JSON
_STREAM_FRAME = {
    "description": "One Server-Sent Event: a job event under its SSE name, with its seq as id, "
    "or a frame without id (`end`, `reset`, `lagged`, and `heartbeat` when asked for).",
    "anyOf": [
        _frame(SSE_NAMES, "EventPayload", with_id=True),
        _frame(("end", "reset", "lagged"), "StreamControl", with_id=False),
        _frame(("heartbeat",), "Heartbeat", with_id=False),
    ],
}


def _seq(name: str, description: str, *, deprecated: bool = False) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
    param = {"name": name, "in": "query", "description": description, "schema": schema}
    return {**param, "deprecated": True} if deprecated else param


def _limit(default: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "description": "At most this many (values above 1000 count as 1000).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ, "default": default},
    }


_TYPES = {
    "name": "types",
    "in": "query",
    "description": f"Only these events: SSE names ({', '.join(SSE_NAMES)}) or full dotted "
    "types (`eval.result`), comma-separated, at most 32.",
    "schema": {"type": "string", "pattern": _TYPES_PATTERN},
}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The job's id (`job_<hex>`), as `POST /api/jobs` answered it.",
    "schema": {"type": "string"},
}


def build_openapi(kinds: Sequence[str] = ("custom",)) -> dict[str, Any]:
    """The document of a jobs server that runs `kinds` (`custom`, plus any it was given)."""
    _, top = models_json_schema(
        [
            (CreateJob, "validation"),
            (EventIn, "validation"),
            (EventBatch, "validation"),
            (Job, "serialization"),
            (JobList, "serialization"),
            (EventPage, "serialization"),
            (Seqs, "serialization"),
            (StreamToken, "serialization"),
            (EventPayload, "serialization"),
            (StreamControl, "serialization"),
            (Heartbeat, "serialization"),
            (ArtifactList, "serialization"),
            (ErrorEnvelope, "serialization"),
        ],
        ref_template=_REF,
    )
    schemas = {**top["$defs"], "StreamFrame": _STREAM_FRAME}
    schemas["CreateJob"]["properties"]["kind"]["enum"] = sorted(kinds)
    job_ops = {"parameters": [_JOB_ID]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "synth-ai jobs",
            "description": "Jobs, their events (polled or streamed as Server-Sent Events) "
            "and their artifacts.",
            "version": __version__,
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
                "StreamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "From `POST /api/jobs/{job_id}/stream-token`: for that "
                    "job's stream and artifacts only.",
                },
            },
        },
        "security": [{"ApiKeyHeader": []}, {"Bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Alive",
                            "content": json_content(
                                {"type": "object", "additionalProperties": True}
                            ),
                        }
                    },
                }
            },
            "/api/jobs": {
                "post": {
                    "summary": "Create a job",
                    "description": "A `custom` job is driven by a producer posting its events; "
                    "other kinds are run by the server.",
                    "requestBody": {
                        "required": False,
                        "content": json_content(schema_ref("CreateJob")),
                    },
                    "responses": {
                        **_ok("The new job", "Job", "201"),
                        **_errors(*_BODY_ERRORS, *_AUTH_ERRORS),
                    },
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": [_limit(50)],
                    "responses": {
                        **_ok("The jobs", "JobList"),
                        **_errors("422", *_AUTH_ERRORS),
                    },
                },
            },
            "/api/jobs/{job_id}": {
                **job_ops,
                "get": {
                    "summary": "A job's snapshot",
                    "responses": {**_ok("The job", "Job"), **_errors("404", *_AUTH_ERRORS)},
                },
            },
            "/api/jobs/{job_id}/cancel": {
                **job_ops,
                "post": {
                    "summary": "Cancel a job",
                    "description": "A finished job stays as it finished; the snapshot says how.",
                    "responses": {
                        **_ok("The job after the request", "Job"),
                        **_errors("404", *_AUTH_ERRORS),
                    },
                },
            },
            "/api/jobs/{job_id}/events": {
                **job_ops,
                "get": {
                    "summary": "A page of a job's events, oldest first",
                    "parameters": [
                        _seq("since_seq", "Events after this seq."),
                        _seq("after", "The old name of since_seq.", deprecated=True),
                        _limit(200),
                        _TYPES,
                    ],
                    "responses": {
                        **_ok("Events and the next cursor", "EventPage"),
                        **_errors("404", "422", *_AUTH_ERRORS),
                    },
                },
                "post": {
                    "summary": "Store events",
                    "description": 'One event, or `{"events": [...]}` with 1 to '
                    f"{MAX_EVENTS_PER_POST}, stored together or not at all; answered "
                    "once committed.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "description": "Stored once per job: a retry with this key and "
                            "the same events is answered the seqs first assigned.",
                            "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": json_content(
                            {"anyOf": [schema_ref("EventIn"), schema_ref("EventBatch")]}
                        ),
                    },
                    "responses": {
                        **_ok("The seqs assigned", "Seqs", "201"),
                        **_errors(*_BODY_ERRORS, "404", "409", *_AUTH_ERRORS),
                    },
                },
            },
            "/api/jobs/{job_id}/stream": {
                **job_ops,
                "get": {
                    "summary": "Stream a job's events (Server-Sent Events)",
                    "description": "Frames `id: <seq>`, `event: status|metric|log|artifact|"
                    "heartbeat` (and `end`, `reset`, `lagged`), `data: <one-line JSON>`; a "
                    "`: keep-alive` comment every `heartbeat` seconds; closes shortly after "
                    "a terminal status, and answers 204 once a finished job is read to its "
                    "end. Also at `/api/rl/jobs/{job_id}/stream` and `/rl/jobs/{job_id}/stream`.",
                    "security": _READER_SECURITY,
                    "parameters": [
                        _seq("since_id", "Resume after this seq (Last-Event-ID wins)."),
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "description": "Resume after this seq (sent by EventSource).",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                        },
                        _TYPES,
                        {
                            "name": "split",
                            "in": "query",
                            "description": "Only metrics of this split (`train`, `eval`).",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "heartbeat",
                            "in": "query",
                            "description": "Seconds between keep-alive comments.",
                            "schema": {"type": "number", "minimum": 0.05, "maximum": 3600},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The event stream; `schema` describes each event",
                            "content": {"text/event-stream": {"schema": schema_ref("StreamFrame")}},
                        },
                        "204": {
                            "description": "The job has finished and the stream is read to its "
                            "end: nothing more will come (an EventSource stops reconnecting)",
                        },
                        **_errors("401", "403", "404", "422", "429", "503"),
                    },
                },
            },
            "/api/jobs/{job_id}/stream-token": {
                **job_ops,
                "post": {
                    "summary": "A short-lived token to stream this job (for EventSource)",
                    "responses": {
                        **_ok("The token and its expiry", "StreamToken"),
                        **_errors("404", *_AUTH_ERRORS),
                    },
                },
            },
            "/api/jobs/{job_id}/artifacts": {
                **job_ops,
                "get": {
                    "summary": "A job's artifacts",
                    "responses": {
                        **_ok("Name, size, sha256 and url of each", "ArtifactList"),
                        **_errors("404", *_AUTH_ERRORS),
                    },
                },
            },
            "/api/jobs/{job_id}/artifacts/{name}": {
                "parameters": [
                    _JOB_ID,
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "A plain file name: letters, digits, '.', '_' and '-', "
                        "no '..', at most 128 characters.",
                        "schema": {"type": "string", "maxLength": 128, "pattern": ARTIFACT_NAME},
                    },
                ],
                "get": {
                    "summary": "One artifact's bytes (also at /rl/jobs/{job_id}/artifacts/{name})",
                    "security": _READER_SECURITY,
                    "responses": {
                        "200": {
                            "description": "The file, as an attachment (Content-Disposition) "
                            "that is never sniffed (nosniff) nor run (CSP `default-src 'none'; "
                            "sandbox`)",
                            "content": {"application/octet-stream": {"schema": {}}},
                        },
                        **_errors("401", "403", "404", "422", "503"),
                    },
                },
                "put": {
                    "summary": "Store the raw body as this artifact and announce it as an "
                    "artifact.<kind> event (also at /rl/jobs/{job_id}/artifacts/{name})",
                    "description": "Only the job's owner (or the operator) may; to anyone else "
                    "the job does not exist (404). 409: the job has as many artifacts as "
                    "SYNTH_JOBS_MAX_ARTIFACTS allows (replacing one by name is fine). 413: the "
                    "file is larger than SYNTH_JOBS_MAX_ARTIFACT_BYTES, or would take the job "
                    "or its tenant past SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES or "
                    "SYNTH_JOBS_MAX_TENANT_ARTIFACT_BYTES; nothing of a refused upload is kept.",
                    "parameters": [
                        {
                            "name": "kind",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[a-z0-9_]{1,32}$"},
                        },
                        {
                            "name": "step",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/octet-stream": {"schema": {}}},
                    },
                    "responses": {
                        **_ok("Stored: name, url, size and sha256", "Artifact", "201"),
                        **_errors("404", "409", "413", "422", *_AUTH_ERRORS),
                    },
                },
            },
        },
    }
