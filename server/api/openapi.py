"""``GET /api/openapi.json``: an OpenAPI 3.1 document generated from the registered endpoints."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from server import __version__
from server.api.endpoints import EndpointSpec, endpoint

routes = web.RouteTableDef()

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "rules": {"type": "array", "items": {"type": "string"}},
                "reasons": {"type": "array", "items": {"type": "object"}},
                "details": {},
            },
        }
    },
}
_ERROR_TEXT = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Validation or rule failure",
    429: "Rate limited",
    503: "Unavailable",
}


def endpoint_specs(app: web.Application) -> list[EndpointSpec]:
    """Every documented endpoint of the app, in registration order."""
    specs: list[EndpointSpec] = []
    for route in app.router.routes():
        spec = getattr(route.handler, "__endpoint_spec__", None)
        if isinstance(spec, EndpointSpec) and spec.method == route.method:
            specs.append(spec)
    return specs


class _ViewSchema(GenerateJsonSchema):
    """Schemas of service views: every field of a view is always sent, defaults included, so all are required."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field["type"] == "dataclass-field":
            return True
        return super().field_is_required(field, total)


def _schema(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = TypeAdapter(model).json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization", schema_generator=_ViewSchema
    )
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    if dataclasses.is_dataclass(model) and isinstance(model, type):
        # A service's view returned as it is: a named component, like a model (its title names it).
        name = str(schema.get("title") or model.__name__)
        components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}
    return schema


def _operation_id(spec: EndpointSpec) -> str:
    slug = spec.path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
    return f"{spec.method.lower()}_{slug}"


def build_openapi(app: web.Application) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of ``app``."""
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for spec in endpoint_specs(app):
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": list(spec.tags),
            "operationId": _operation_id(spec),
        }
        parameters: list[dict[str, Any]] = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "integer"}}
            for part in spec.path.split("/")
            if part.startswith("{") and part.endswith("}")
        ]
        if spec.query is not None:
            query_schema = spec.query.model_json_schema()
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
        if parameters:
            operation["parameters"] = parameters
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(spec.body, components)}},
            }
        success: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            success["content"] = {spec.content_type: {"schema": _schema(spec.response, components)}}
        responses: dict[str, Any] = {str(spec.status): success}
        errors = set(spec.errors)
        if spec.body is not None or spec.query is not None:
            errors |= {400, 422}
        if spec.roles is not None:
            errors |= {401, 403}
            operation["security"] = [{"bearer": []}]
            operation["x-roles"] = list(spec.roles)
        for status in sorted(errors):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        operation["responses"] = responses
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Telemed VHI API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@endpoint(routes, "GET", "/api/openapi.json", summary="This API's OpenAPI 3.1 document", tags=["operations"])
async def openapi(request: web.Request) -> dict[str, Any]:
    """Generated from the same declarations that validate requests."""
    return build_openapi(request.app)
