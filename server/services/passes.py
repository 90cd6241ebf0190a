"""The pass photo (R6.4): decode the upload server-side, validate it against the pass format, store it
re-encoded without metadata in the database, and request passes from the person's clinics that have an
access system."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from server.db.models import PassPhoto
from server.db.repositories import coverage as coverage_repo
from server.db.repositories import dispatch as repo
from server.domain.decisions import Reason
from server.domain.errors import DomainError, RuleViolation, Unavailable
from server.domain.passes import PASS_PHOTO_RULES, validate_photo_facts
from server.services import audit, images
from server.services.context import ServiceContext
from server.services.decisions import reasons_json
from server.services.dispatch import create_pass_request_txn
from server.services.dispatch_common import require_person_txn
from server.services.dispatch_views import ReasonJson
from server.services.identity import Principal

STORED_MIME: Final = "image/jpeg"
STORED_PHOTO_SIDE: Final = 2400
"""A pass photo is stored at most this long (a 35x45 mm print at 600 dpi is about 830x1060 px)."""


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
    reasons: list[ReasonJson]


def _not_an_image() -> RuleViolation:
    reason = Reason("R6.4", f"the file is not a readable image; the photo must be {PASS_PHOTO_RULES.describe()}", {})
    return RuleViolation(reason.message, code="not_an_image", reasons=(reason,))


def check_photo(data: bytes) -> tuple[images.ImageFacts, list[dict[str, Any]]]:
    """Check the upload against the pass format (R6.4) from its header, before any pixel is decoded.

    The client's file name and declared type are never trusted: the format is what Pillow finds.
    The size checked is the size as displayed (EXIF orientation applied), read from the header
    before any pixel is decoded (the largest side is checked there too).

    Args:
        data: The uploaded bytes.

    Returns:
        ``(facts, reasons)``: what the header says, and the rule reasons.

    Raises:
        RuleViolation: not an image (``not_an_image``) or not of the pass format (``invalid_photo``).
    """
    try:
        facts = images.read_facts(data)
    except images.UnreadableImage as exc:
        raise _not_an_image() from exc
    decision = validate_photo_facts(facts.mime, len(data), facts.width, facts.height)
    if not decision.allowed:
        raise RuleViolation(decision.reasons[0].message, code="invalid_photo", reasons=decision.reasons)
    return facts, reasons_json(decision.reasons)


async def clean_photo(data: bytes) -> tuple[images.CleanImage, list[dict[str, Any]]]:
    """:func:`check_photo`, then the re-encode through the process's few decode slots (bounded memory).

    A JPEG is decoded at reduced size (libjpeg's DCT scaling) and stored at most
    ``STORED_PHOTO_SIDE`` long; a PNG is capped by ``PASS_PHOTO_RULES.max_png_pixels`` before any
    pixel is decoded (issue 11 item 11: four 36-megapixel PNGs at once took the server up 2 GiB).

    Returns:
        ``(photo, reasons)``: the upright JPEG without EXIF/GPS, XMP, ICC or comments, and the rule reasons.

    Raises:
        RuleViolation: as :func:`check_photo`.
        Unavailable: every decode slot stayed busy (503 with Retry-After).
    """
    _, reasons = check_photo(data)
    try:
        photo = await images.reencode_bounded(
            data,
            max_pixels=PASS_PHOTO_RULES.max_side**2,
            output_mime=STORED_MIME,
            max_side=STORED_PHOTO_SIDE,
            max_full_decode_pixels=PASS_PHOTO_RULES.max_png_pixels,
        )
    except images.ImagesBusy as exc:
        raise PhotoDecodersBusy("the server is busy decoding images; send the photo again in a moment") from exc
    except images.UnreadableImage as exc:
        raise _not_an_image() from exc
    return photo, reasons


class PhotoDecodersBusy(Unavailable):
    """Every image decoder of this process is busy: come back shortly (503 with Retry-After)."""

    code = "images_busy"
    retry_after_seconds = 2


async def upload_pass_photo(ctx: ServiceContext, principal: Principal, data: bytes) -> PassPhotoResult:
    """Accept the insured person's photo for clinic passes (R6.4) and request the passes it is needed for.

    Passes are requested from the person's attached clinic and the clinics of their active letters
    of guarantee, when those clinics have an access system; existing requests get the new photo.
    The photo is stored in the database (every server process can send it); the one it replaces
    is deleted unless an earlier pass request still refers to it.

    Args:
        ctx: The service context.
        principal: The insured person.
        data: The uploaded bytes (already capped at the size limit by the handler).

    Returns:
        The photo's facts and the pass requests.

    Raises:
        RuleViolation: not an image, or not of the pass format (every failed condition cited, R6.4).
    """
    photo, reasons = await clean_photo(data)
    async with ctx.uow() as uow:
        session = uow.session
        now = ctx.clock.now()
        person = await require_person_txn(session, principal.subject_id, for_update=True)
        stored = await repo.add_pass_photo_txn(
            session,
            PassPhoto(
                content=photo.data,
                mime=photo.mime,
                width=photo.width,
                height=photo.height,
                size_bytes=len(photo.data),
                sha256=hashlib.sha256(photo.data).hexdigest(),
                created_at=now,
            ),
        )
        replaced = person.pass_photo_id
        # A file from before migration 0003 stays where it is: earlier pass requests may name it.
        person.pass_photo_id, person.pass_photo_path = stored.id, None
        clinic_ids = {
            letter.clinic_id for letter in await repo.letters_of_person(session, person.id) if letter.status == "active"
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
                row.photo_id, row.photo_path, row.photo_mime = stored.id, None, photo.mime
                row.photo_width, row.photo_height, row.status = photo.width, photo.height, "submitted"
            requests.append(PassRequestView(id=row.id, clinic_id=clinic.id, status=row.status))
        if replaced is not None:
            await repo.delete_pass_photo_if_unused_txn(session, replaced)
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
    return PassPhotoResult(
        photo_on_file=True,
        mime=photo.mime,
        width=photo.width,
        height=photo.height,
        pass_requests=requests,
        reasons=reasons,
    )
