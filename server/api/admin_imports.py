"""Admin routes for files: an employer's insured list (CSV/XLSX, dry run or apply), its CSV export, and
a bank's payments CSV (R7.1). Files come as multipart field ``file``, read up to the size limit only."""

from __future__ import annotations

from datetime import date

from aiohttp import BodyPartReader, web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.domain.errors import InvalidInput
from server.keys import context_key
from server.services.identity import ROLE_ADMIN
from server.services.records import bulk_payments, insured_lists
from server.services.records.changes import actor_of
from server.services.records.files import MAX_FILE_BYTES, FileTooLarge

routes = web.RouteTableDef()
ROLES = (ROLE_ADMIN,)
TAGS = ("admin: files",)
FILE_FIELD = "file"
READ_CHUNK = 256 * 1024


class ListImportQuery(ApiModel):
    """How to load the list."""

    dry_run: bool = False
    encoding: str | None = Field(default=None, max_length=20, description="force cp1251 or utf-8")
    removal_date: date | None = Field(default=None, description="cover of persons not listed ends (default today)")


class PaymentsImportQuery(ApiModel):
    """How to load the payments file."""

    dry_run: bool = False
    encoding: str | None = Field(default=None, max_length=20)


async def read_upload(request: web.Request) -> tuple[bytes, str]:
    """The multipart field ``file`` and its name; more than the limit is a 413 before it is all read."""
    if request.content_length is not None and request.content_length > MAX_FILE_BYTES + READ_CHUNK:
        raise FileTooLarge(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput(f"send the file as multipart/form-data field '{FILE_FIELD}'", code="multipart_required")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name != FILE_FIELD:
            continue
        buffer = bytearray()
        while chunk := await part.read_chunk(READ_CHUNK):
            buffer.extend(chunk)
            if len(buffer) > MAX_FILE_BYTES:
                raise FileTooLarge(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return bytes(buffer), (part.filename or "upload")[:300]
    raise InvalidInput(f"no multipart field '{FILE_FIELD}' in the upload", code="missing_file")


@endpoint(
    routes,
    "POST",
    "/api/admin/policyholders/{policyholder_id}/insured-lists",
    summary="Load an employer's list of insured persons (CSV in cp1251 or UTF-8, ';' or ','; or XLSX) as "
    "multipart field 'file': every row checked first, one transaction; dry_run shows who is added, changed "
    "and removed; 422 with a per-row report (row, column, value, reason) and nothing written",
    tags=TAGS,
    roles=ROLES,
    query=ListImportQuery,
    response=insured_lists.ListReport,
    errors=[400, 404, 413, 415, 422],
)
async def import_insured_list(request: web.Request, query: ListImportQuery) -> web.Response | object:
    """Re-loading the same list changes nothing."""
    content, file_name = await read_upload(request)
    report = await insured_lists.import_insured_list(
        request.app[context_key],
        actor_of(current_principal(request)),
        policyholder_id=path_int(request, "policyholder_id"),
        content=content,
        file_name=file_name,
        encoding=query.encoding,
        removal_date=query.removal_date,
        dry_run=query.dry_run,
    )
    return report


@endpoint(
    routes,
    "GET",
    "/api/admin/policyholders/{policyholder_id}/insured-list.csv",
    summary="The policyholder's insured persons as CSV (UTF-8 with BOM, ';'); a cell that a spreadsheet "
    "would run as a formula is written as text",
    tags=TAGS,
    roles=ROLES,
    response=None,
    content_type="text/csv",
    errors=[404],
)
async def export_insured_list(request: web.Request) -> web.Response:
    """Formulas that came in as text (``=HYPERLINK(...)``) never go out as formulas."""
    holder_id = path_int(request, "policyholder_id")
    body = await insured_lists.export_insured_csv(request.app[context_key], holder_id)
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="insured-{holder_id}.csv"'},
    )


@endpoint(
    routes,
    "POST",
    "/api/admin/payments/import",
    summary="Bundle a bank's payments CSV (policy_number, amount, date, reference) as multipart field 'file', "
    "each as POST /api/admin/payments does (R7.1); a reference already loaded is skipped; one refused row "
    "bundles nothing (422 with the per-row report)",
    tags=TAGS,
    roles=ROLES,
    query=PaymentsImportQuery,
    response=bulk_payments.PaymentsReport,
    errors=[400, 413, 415, 422],
)
async def import_payments(request: web.Request, query: PaymentsImportQuery) -> object:
    """All or nothing; dry_run bundles and rolls back."""
    content, file_name = await read_upload(request)
    principal = current_principal(request)
    return await bulk_payments.import_payments(
        request.app[context_key],
        actor_of(principal),
        principal=principal,
        content=content,
        file_name=file_name,
        encoding=query.encoding,
        dry_run=query.dry_run,
    )
