"""The OpenAPI 3.1 document of a task app, generated from the contract models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from .config import TaskAppConfig
from .contracts import CONTRACT_VERSION, ErrorEnvelope, RolloutRequest, RolloutResponse, TaskInfo

_REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {
    "400": "Malformed request (for example invalid JSON)",
    "401": "Missing or invalid API key",
    "413": "Request body too large",
    "415": "Unsupported content type",
    "422": "Request failed validation",
    "429": "Too many rollouts running or waiting",
    "503": "No API key configured on the server",
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def schema_ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def error_responses(descriptions: Mapping[str, str], *statuses: str) -> dict[str, Any]:
    """Responses in the one error envelope (DESIGN.md 3.3), each with its description."""
    envelope = json_content(schema_ref("ErrorEnvelope"))
    return {
        status: {"description": descriptions[status], "content": envelope} for status in statuses
    }


def _errors(*statuses: str) -> dict[str, Any]:
    return error_responses(_ERROR_STATUSES, *statuses)


def build_openapi(config: TaskAppConfig) -> dict[str, Any]:
    _, top = models_json_schema(
        [
            (RolloutRequest, "validation"),
            (RolloutResponse, "serialization"),
            (TaskInfo, "serialization"),
            (ErrorEnvelope, "serialization"),
        ],
        ref_template=_REF,
    )
    object_schema = {"type": "object", "additionalProperties": True}
    seeds_param = {"type": "array", "items": {"type": "integer"}}
    auth_errors = ("401", "503")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": config.name,
            "description": config.description,
            "version": config.base_task_info.task.version or "0",
            "x-contract-version": CONTRACT_VERSION,
        },
        "components": {
            "schemas": top["$defs"],
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"ApiKeyHeader": []}, {"Bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {
                        "200": {"description": "Alive", "content": json_content(object_schema)}
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Health and auth hint",
                    "responses": {
                        "200": {"description": "Healthy", "content": json_content(object_schema)},
                        **_errors(*auth_errors),
                    },
                }
            },
            "/info": {
                "get": {
                    "summary": "Service, dataset, rubrics, inference and limits",
                    "responses": {
                        "200": {
                            "description": "App information",
                            "content": json_content(object_schema),
                        },
                        **_errors(*auth_errors),
                    },
                }
            },
            "/task_info": {
                "get": {
                    "summary": "The taskset, or the TaskInfo of one or more seeds",
                    "parameters": [
                        {"name": "seed", "in": "query", "schema": seeds_param, "explode": True},
                        {"name": "seeds", "in": "query", "schema": seeds_param, "explode": True},
                    ],
                    "responses": {
                        "200": {
                            "description": "A taskset description, one TaskInfo, or a list",
                            "content": json_content(
                                {
                                    "anyOf": [
                                        schema_ref("TaskInfo"),
                                        {"type": "array", "items": schema_ref("TaskInfo")},
                                        object_schema,
                                    ]
                                }
                            ),
                        },
                        **_errors("422", *auth_errors),
                    },
                }
            },
            "/rollout": {
                "post": {
                    "summary": "Run one rollout",
                    "requestBody": {
                        "required": True,
                        "content": json_content(schema_ref("RolloutRequest")),
                    },
                    "responses": {
                        "200": {
                            "description": "The rollout's trajectories, metrics and trace",
                            "content": json_content(schema_ref("RolloutResponse")),
                        },
                        **_errors("400", "413", "415", "422", "429", *auth_errors),
                        "500": {
                            "description": "The executor raised (rollout_failed)",
                            "content": json_content(schema_ref("ErrorEnvelope")),
                        },
                        "504": {
                            "description": "The rollout passed its deadline (rollout_timeout)",
                            "content": json_content(schema_ref("ErrorEnvelope")),
                        },
                    },
                }
            },
        },
    }
