"""What the OpenAPI schema says about every operation besides its own success."""

from __future__ import annotations

from typing import Any

# What every operation may answer besides its success (DESIGN.md: "Errors"), in the OpenAPI schema.
ERROR_RESPONSES = {
    "400": "Bad input: field errors ({field: [messages]}) or {detail}.",
    "401": "No credentials, or an invalid, expired or revoked API key.",
    "403": "The caller's role is too low, or its address is outside the tenant's allowed ranges.",
    "404": "No such object in the caller's tenant.",
    "409": "The request conflicts with the object's current state.",
    "413": "The body is larger than allowed.",
    "429": "Too many requests, or the tenant's monthly scan limit is reached.",
}


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: Any) -> Any:
    """drf-spectacular post-processing hook: add the error answers to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = {
        "type": "object",
        "description": "`detail` for errors about the request as a whole; otherwise field name to messages.",
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": True,
    }
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result
