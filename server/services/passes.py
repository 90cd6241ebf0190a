"""The pass photo (R6.4): decode the upload server-side, validate it against the pass format, store it
under a random name, and request passes from the person's clinics that have an access system."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.domain.decisions import Reason
from server.domain.errors import DomainError, RuleViolation
from server.domain.passes import PASS_PHOTO_RULES, validate_photo_facts
from server.services import audit
from server.services.context import ServiceContext
from server.services.coverage import reasons_json, require_person_txn
from server.services.dispatch import create_pass_request_txn
from server.services.identity import Principal

PHOTO_DIR: Final = "passes"
STORED_MIME: Final = "image/jpeg"
_FORMATS: Final = {"JPEG": "image/jpeg", "PNG": "image/png"}


class PhotoTooLarge(DomainError):
    """The upload is larger than the pass format allows (R6.4); reading stopped early."""

    code = "photo_too_large"
    status = 413


def too_large() -> PhotoTooLarge:
    """The refusal for an upload over the size limit, citing R6.4."""
    limit = PASS_PHOTO_RULES.max_bytes
    reason = Reason("R6.4", f"the photo is larger than {limit // (1024 * 1024)} MiB", {"max_bytes": limit})
    return PhotoTooLarge(reason.message, reasons=(reason,), details={"max_bytes": limit})


@dataclass(frozen=True, slots=True)
class PassRequestView:
    """A pass requested from a clinic with an access system (R6.4)."""

    id: int
    clinic_id: int
    status: str


@dataclass(frozen=True, slots=True)
class PassPhotoResult:
    """The accepted photo and the passes requested with it."""

    photo_on_file: bool
    mime: str
    width: int
    height: int
    pass_requests: list[PassRequestView]
    reasons: list[dict[str, Any]]


def _not_an_image() -> RuleViolation:
    reason = Reason("R6.4", f"the file is not a readable image; the photo must be {PASS_PHOTO_RULES.describe()}", {})
    return RuleViolation(reason.message, code="not_an_image", reasons=(reason,))


def decode_photo(data: bytes) -> tuple[bytes, int, int, list[dict[str, Any]]]:
    """Decode the upload with Pillow, check it (R6.4), and re-encode it as a clean JPEG without metadata.

    The client's file name and declared type are never trusted: the format is what Pillow finds.

    Args:
        data: The uploaded bytes.

    Returns:
        ``(jpeg_bytes, width, height, reasons)``.

    Raises:
        RuleViolation: not an image (``not_an_image``) or not of the pass format (``invalid_photo``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        # Image.open reads only the header; the size check below (max side) runs before any pixel is decoded,
        # and Pillow itself refuses decompression bombs (DecompressionBombError).
        with Image.open(io.BytesIO(data)) as image:
            mime = _FORMATS.get(image.format or "", f"image/{(image.format or 'unknown').lower()}")
            width, height = image.size
            decision = validate_photo_facts(mime, len(data), width, height)
            if not decision.allowed:
                raise RuleViolation(decision.reasons[0].message, code="invalid_photo", reasons=decision.reasons)
            image.load()
            rgb = image.convert("RGB")
    except RuleViolation:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError, Warning) as exc:
        raise _not_an_image() from exc
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=90)  # no EXIF: location and device data are dropped
    return out.getvalue(), width, height, reasons_json(decision.reasons)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


async def upload_pass_photo(ctx: ServiceContext, principal: Principal, data: bytes) -> PassPhotoResult:
    """Accept the insured person's photo for clinic passes (R6.4) and request the passes it is needed for.

    Passes are requested from the person's attached clinic and the clinics of their active letters
    of guarantee, when those clinics have an access system; existing requests get the new photo.

    Args:
        ctx: The service context.
        principal: The insured person.
        data: The uploaded bytes (already capped at the size limit by the handler).

    Returns:
        The photo's facts and the pass requests.

    Raises:
        RuleViolation: not an image, or not of the pass format (every failed condition cited, R6.4).
    """
    jpeg, width, height, reasons = await asyncio.to_thread(decode_photo, data)
    relative = Path(PHOTO_DIR) / f"{secrets.token_hex(16)}-{width}x{height}.jpg"
    target = ctx.settings.uploads_dir / relative
    await asyncio.to_thread(_write_private, target, jpeg)
    try:
        async with ctx.uow() as uow:
            session = uow.session
            now = ctx.clock.now()
            person = await require_person_txn(session, principal.subject_id, for_update=True)
            # Earlier photos stay on disk: earlier pass requests refer to them.
            person.pass_photo_path = relative.as_posix()
            clinic_ids = {
                letter.clinic_id
                for letter in await repo.letters_of_person(session, person.id)
                if letter.status == "active"
            }
            if person.attached_clinic_id is not None:
                clinic_ids.add(person.attached_clinic_id)
            clinics = await coverage_repo.clinics_by_ids(session, clinic_ids)
            existing = {p.clinic_id: p for p in await repo.pass_requests_of_person(session, person.id)}
            requests: list[PassRequestView] = []
            for clinic in sorted((c for c in clinics.values() if c.has_access_system), key=lambda c: c.id):
                row = existing.get(clinic.id)
                if row is None:
                    row = await create_pass_request_txn(session, person, clinic, now)
                else:
                    row.photo_path, row.photo_mime = person.pass_photo_path, STORED_MIME
                    row.photo_width, row.photo_height, row.status = width, height, "submitted"
                requests.append(PassRequestView(id=row.id, clinic_id=clinic.id, status=row.status))
            await audit.record_txn(
                ctx,
                session,
                principal,
                action="pass_photo.upload",
                resource_type="insured_person",
                resource_id=person.id,
                patient_id=person.id,
            )
            await uow.commit()
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return PassPhotoResult(
        photo_on_file=True, mime=STORED_MIME, width=width, height=height, pass_requests=requests, reasons=reasons
    )
