"""``GET /api/openapi.json``: an OpenAPI 3.1 document generated from the registered endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from server import __version__
from server.api.endpoints import EndpointSpec, endpoint
from server.services import field_access

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
    """Schemas of service views: every field of a view is always sent, defaults included, so all are required,
    except the fields some role does not get (checklist C2, ``server/services/field_access.py``)."""

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        json_schema = super().dataclass_schema(schema)
        hidden = field_access.hidden_from_some_role(schema["cls"])
        if hidden and "required" in json_schema:
            json_schema["required"] = [name for name in json_schema["required"] if name not in hidden]
        return json_schema

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field["type"] == "dataclass-field":
            return True
        return super().field_is_required(field, total)


def _schemas(specs: list[EndpointSpec]) -> tuple[dict[tuple[int, str], dict[str, Any]], dict[str, Any]]:
    """The body and response schemas of every route, generated together.

    One generation for all routes lets pydantic name each model or view once: two service views that
    share a class name (``ClinicView`` of dispatch and of the back office) get distinct components
    instead of one silently overwriting the other.
    """
    inputs: list[tuple[tuple[int, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for index, spec in enumerate(specs):
        if spec.body is not None:
            inputs.append(((index, "body"), "serialization", TypeAdapter(spec.body)))
        if spec.response is not None:
            inputs.append(((index, "response"), "serialization", TypeAdapter(spec.response)))
    schemas, definitions = TypeAdapter.json_schemas(
        inputs, ref_template="#/components/schemas/{model}", schema_generator=_ViewSchema
    )
    by_key = {key: schema for (key, _mode), schema in schemas.items()}
    defs: dict[str, Any] = definitions.get("$defs", {})
    # A view may name its component (``MeView`` titled ``MeResponse``): use the title where it is unique.
    titles = [str(schema.get("title", name)) for name, schema in defs.items()]
    renames = {
        name: title
        for (name, schema), title in zip(defs.items(), titles, strict=True)
        if title != name and titles.count(title) == 1 and title not in defs
    }
    # Two views of one class name: pydantic names them by their full module path; keep its last part.
    for name in defs:
        short = ".".join(name.split("__")[-2:])
        if "__" in name and name not in renames and short not in defs:
            renames[name] = short
    if renames:
        prefix = "#/components/schemas/"
        refs = {prefix + old: prefix + new for old, new in renames.items()}
        defs = {renames.get(name, name): schema for name, schema in defs.items()}
        by_key, defs = _renamed_refs(by_key, refs), _renamed_refs(defs, refs)
    return by_key, defs


def _renamed_refs(value: Any, refs: dict[str, str]) -> Any:
    """``value`` with every ``$ref`` in ``refs`` replaced."""
    if isinstance(value, dict):
        return {
            key: refs.get(item, item) if key == "$ref" and isinstance(item, str) else _renamed_refs(item, refs)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_renamed_refs(item, refs) for item in value]
    return value


def _operation_id(spec: EndpointSpec) -> str:
    slug = spec.path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
    return f"{spec.method.lower()}_{slug}"


def build_openapi(app: web.Application) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of ``app``."""
    specs = endpoint_specs(app)
    schemas, definitions = _schemas(specs)
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, **definitions}
    paths: dict[str, Any] = {}
    for index, spec in enumerate(specs):
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
                "content": {"application/json": {"schema": schemas[(index, "body")]}},
            }
        success: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            success["content"] = {spec.content_type: {"schema": schemas[(index, "response")]}}
        responses: dict[str, Any] = {str(spec.status): success}
        errors = spec.error_statuses()
        if spec.roles is not None:
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
