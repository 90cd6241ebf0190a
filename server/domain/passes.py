"""Clinic passes (R6.4): which clinics need the person's photo, and what a usable photo is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from server.domain.coverage_types import ClinicFacts, InsuredFacts
from server.domain.decisions import Decision, Reason


@dataclass(frozen=True, slots=True)
class PhotoRules:
    """The photo format clinics with an access system accept (R6.4 "a photo of the required format").

    Attributes:
        mime_types: Accepted content types.
        max_bytes: Largest accepted file.
        min_width: Narrowest accepted image, in pixels.
        min_height: Lowest accepted image, in pixels.
        max_side: Largest accepted side, in pixels (also guards the decoder against huge images).
        portrait: The image must be taller than wide, like a document photo.
        max_png_pixels: Largest PNG, in pixels. A PNG cannot be decoded at reduced size (a JPEG
            can), so a big one would sit in memory whole: 36 MP of RGBA is 144 MiB per copy
            (issue 11 item 11). A document photo needs far less; a larger photo can come as JPEG.
    """

    mime_types: frozenset[str]
    max_bytes: int
    min_width: int
    min_height: int
    max_side: int
    portrait: bool
    max_png_pixels: int | None = None

    def describe(self) -> str:
        """The rules as a sentence for the person uploading the photo."""
        kinds = " or ".join(sorted(m.removeprefix("image/").upper() for m in self.mime_types))
        shape = ", portrait" if self.portrait else ""
        return (
            f"{kinds}, at most {self.max_bytes // (1024 * 1024)} MiB, "
            f"at least {self.min_width}x{self.min_height} px{shape}"
        )


PASS_PHOTO_RULES: Final = PhotoRules(
    mime_types=frozenset({"image/jpeg", "image/png"}),
    max_bytes=2 * 1024 * 1024,
    min_width=300,
    min_height=400,
    max_side=6000,
    portrait=True,
    max_png_pixels=8_000_000,
)


def validate_photo_facts(
    mime: str,
    size_bytes: int,
    width: int,
    height: int,
    rules: PhotoRules = PASS_PHOTO_RULES,
) -> Decision:
    """Check a decoded photo's facts against the pass photo format (R6.4).

    The server decodes the upload (so ``mime`` is the decoded format, not the client's claim) and
    passes the facts here; every failed condition is listed so the person can fix all at once.

    Args:
        mime: The decoded image's content type, e.g. ``"image/jpeg"``.
        size_bytes: File size.
        width: Width in pixels.
        height: Height in pixels.
        rules: The format; ``PASS_PHOTO_RULES`` unless a clinic needs another.

    Returns:
        ``allowed`` when the photo can be sent for a pass.
    """
    facts = {"mime": mime, "size_bytes": size_bytes, "width": width, "height": height}
    failures: list[Reason] = []
    if mime.lower() not in rules.mime_types:
        failures.append(Reason("R6.4", f"the photo must be {rules.describe()}; {mime!r} is not accepted", facts))
    if size_bytes <= 0:
        failures.append(Reason("R6.4", "the photo file is empty", facts))
    elif size_bytes > rules.max_bytes:
        failures.append(Reason("R6.4", f"the photo is larger than {rules.max_bytes // (1024 * 1024)} MiB", facts))
    if width < rules.min_width or height < rules.min_height:
        failures.append(
            Reason(
                "R6.4",
                f"the photo is {width}x{height} px; at least {rules.min_width}x{rules.min_height} px is needed",
                facts,
            )
        )
    if max(width, height) > rules.max_side:
        failures.append(Reason("R6.4", f"the photo may not exceed {rules.max_side} px on a side", facts))
    if rules.max_png_pixels is not None and mime.lower() == "image/png" and width * height > rules.max_png_pixels:
        failures.append(
            Reason(
                "R6.4",
                f"a PNG photo may have at most {rules.max_png_pixels // 1_000_000} megapixels; "
                "send a smaller one or a JPEG",
                facts,
            )
        )
    if rules.portrait and height <= width:
        failures.append(Reason("R6.4", "the photo must be portrait (taller than wide)", facts))
    if failures:
        return Decision.deny(*failures)
    return Decision.allow(Reason("R6.4", "the photo meets the pass format", facts))


def check_pass_photo(clinic: ClinicFacts, insured: InsuredFacts) -> Decision:
    """Whether the person can get into the clinic as far as passes go (R6.4).

    Args:
        clinic: The clinic; the clinic list marks those with an access system.
        insured: The person; ``has_pass_photo`` says whether their photo is on file.

    Returns:
        ``allowed`` when no pass is needed or the photo is on file; refused (with what to send)
        when the clinic has an access system and the photo is missing.
    """
    facts = {"clinic_id": clinic.id, "insured_id": insured.id}
    if not clinic.has_access_system:
        return Decision.allow(Reason("R6.4", f"{clinic.name} has no access system: no pass is needed", facts))
    if insured.has_pass_photo:
        return Decision.allow(
            Reason("R6.4", f"{clinic.name} has an access system; the photo for the pass is on file", facts)
        )
    return Decision.deny(
        Reason(
            "R6.4",
            f"{clinic.name} has an access system: send a photo ({PASS_PHOTO_RULES.describe()}) so the insurer "
            "can request a pass",
            facts,
        )
    )
