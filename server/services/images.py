"""Uploaded images (chat attachments, pass photos): read with Pillow, re-encoded without the uploader's metadata.

A phone photo carries EXIF (GPS position, device, time), XMP, an ICC profile, text chunks and
comments: personal data that we must not keep nor hand to the other participant. Only the pixels
survive. The EXIF orientation is applied first, so the photo still shows the right way up once the
tag is gone; an embedded colour profile is converted to sRGB, so the colours still look the same
once the profile is gone; then the image is encoded afresh in its own format (JPEG, PNG, WebP).

Pure functions on bytes (no I/O); they burn CPU and memory, so services call them through
:func:`reencode_bounded`: in a worker thread, a few at a time per process.
"""

from __future__ import annotations

import asyncio
import io
import struct
import weakref
from dataclasses import dataclass
from typing import Any, Final

from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin

# Pillow names a JPEG with a multi-picture index (phones add depth maps, HDR gain maps) "MPO":
# it is a JPEG, and only its primary picture is kept.
FORMAT_MIME: Final = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIME_FORMAT: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
JPEG_QUALITY: Final = 90  # when the source's own quantisation tables cannot be reused
WEBP_QUALITY: Final = 90
_ROTATED: Final = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# What Pillow raises on a malformed file (fuzzing finds all of these); the pixel-cap refusal too.
_DECODE_ERRORS: Final = (
    OSError,  # UnidentifiedImageError, truncated data
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
    Warning,  # DecompressionBombWarning when warnings are errors
)


class UnreadableImage(Exception):
    """The bytes are not an image Pillow can read, not of an accepted format, or too many pixels."""


DECODE_CONCURRENCY: Final = 2
"""Images decoded at once per process: each can take a few hundred MiB while it is decoded."""
DECODE_WAIT_SECONDS: Final = 5.0
"""How long an upload waits for a decode slot before it is told to come back (503 + Retry-After)."""


class ImagesBusy(Exception):
    """Every decode slot stayed busy for ``DECODE_WAIT_SECONDS``; the caller answers 503 with Retry-After."""


LARGE_FULL_DECODE_PIXELS: Final = 4_000_000
"""A PNG or WebP above this (16 MiB as RGBA, and it is decoded whole) takes the one large slot too:
two 16-megapixel PNGs at once took the server 342 MiB up (issue 11 item 11)."""

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_large_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def decode_slots() -> asyncio.Semaphore:
    """This event loop's semaphore of decode slots (one per process in production)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(DECODE_CONCURRENCY)
    return slots


def large_decode_slot() -> asyncio.Semaphore:
    """This event loop's single slot for large images that cannot be decoded at reduced size."""
    loop = asyncio.get_running_loop()
    slot = _large_slots.get(loop)
    if slot is None:
        slot = _large_slots[loop] = asyncio.Semaphore(1)
    return slot


def _is_large_full_decode(data: bytes) -> bool:
    try:
        facts = read_facts(data)
    except UnreadableImage:
        return False  # reencode refuses it without decoding
    return facts.mime != "image/jpeg" and facts.width * facts.height > LARGE_FULL_DECODE_PIXELS


async def reencode_bounded(data: bytes, **kwargs: Any) -> CleanImage:
    """:func:`reencode` in a worker thread, at most ``DECODE_CONCURRENCY`` at once (bounded memory),
    and a large PNG or WebP (decoded whole) one at a time.

    Raises:
        ImagesBusy: no slot came free within ``DECODE_WAIT_SECONDS``.
        UnreadableImage: as :func:`reencode`.
    """
    slots = [large_decode_slot(), decode_slots()] if _is_large_full_decode(data) else [decode_slots()]
    taken: list[asyncio.Semaphore] = []
    try:
        async with asyncio.timeout(DECODE_WAIT_SECONDS):
            for slot in slots:  # always in this order: no two uploads can wait on each other
                await slot.acquire()
                taken.append(slot)
    except TimeoutError:
        for slot in taken:
            slot.release()
        raise ImagesBusy("every image decoder is busy") from None
    try:
        return await asyncio.to_thread(reencode, data, **kwargs)
    finally:
        for slot in taken:
            slot.release()


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the header says, before any pixel is decoded.

    Attributes:
        mime: The real type, from the content (never the file name or the declared type).
        width: Width as displayed, i.e. after the EXIF orientation.
        height: Height as displayed.
    """

    mime: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class CleanImage:
    """The re-encoded image that is stored and served; ``width``/``height`` are its own."""

    data: bytes
    mime: str
    width: int
    height: int


def read_facts(data: bytes) -> ImageFacts:
    """The image's type and displayed size from its header only (cheap, safe on huge images).

    Raises:
        UnreadableImage: Pillow does not recognise the bytes.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            mime = FORMAT_MIME.get(fmt) or Image.MIME.get(fmt) or f"image/{fmt.lower() or 'unknown'}"
            width, height = image.size
            if _header_orientation(image) in _ROTATED:
                width, height = height, width
    except _DECODE_ERRORS as exc:
        raise UnreadableImage(str(exc)) from exc
    return ImageFacts(mime, width, height)


def reencode(
    data: bytes,
    *,
    max_pixels: int,
    output_mime: str | None = None,
    max_side: int | None = None,
    max_full_decode_pixels: int | None = None,
) -> CleanImage:
    """Decode, verify and re-encode an image so that nothing but its pixels is kept.

    Args:
        data: The uploaded bytes (JPEG, PNG or WebP).
        max_pixels: Refuse larger images before decoding them (decompression bombs).
        output_mime: Encode to this type instead of the source's own (pass photos are always JPEG).
        max_side: Store at most this many pixels on the long side. A JPEG is then decoded at a
            reduced scale (1/2, 1/4 or 1/8, libjpeg's DCT scaling), so a 48-megapixel phone photo
            never sits in memory at full size.
        max_full_decode_pixels: PNG and WebP cannot be decoded at reduced size: refuse those with
            more pixels (a 7070x7070 RGBA PNG of 194 KB would take 200 MiB decoded).

    Returns:
        The new bytes, their type and size (width and height swapped when the EXIF orientation said so).

    Raises:
        UnreadableImage: not a readable JPEG, PNG or WebP, damaged, or over ``max_pixels``.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
            if fmt not in FORMAT_MIME:
                raise UnreadableImage(f"{fmt or 'unknown'} images are not accepted")
            if width * height > max_pixels:
                raise UnreadableImage(f"{width}x{height} is more than {max_pixels} pixels")
            full_decode = fmt not in ("JPEG", "MPO")
            if full_decode and max_full_decode_pixels is not None and width * height > max_full_decode_pixels:
                raise UnreadableImage(f"a {fmt} of {width}x{height} is more than {max_full_decode_pixels} pixels")
            probe.verify()  # structure and checksums; the file must be reopened after this
        with Image.open(io.BytesIO(data)) as source:
            if max_side is not None and not full_decode and max(width, height) > max_side:
                # Decode at 1/2, 1/4 or 1/8 scale. Ask for the box the picture will shrink to, with its
                # own aspect: Pillow scales by the smaller of the two ratios, so a square box would
                # leave a 4500x6000 photo at full size (81 MiB instead of 20).
                ratio = max_side / max(width, height)
                source.draft(source.mode, (max(1, int(width * ratio)), max(1, int(height * ratio))))
            source.load()  # the first frame only: an animation keeps its first picture
            target = MIME_FORMAT[output_mime] if output_mime else ("JPEG" if fmt == "MPO" else fmt)
            options = _encoder_options(source, target, data)
            upright = ImageOps.exif_transpose(source)
            if max_side is not None and max(upright.size) > max_side:
                upright = upright.copy() if upright is source else upright
                upright.thumbnail((max_side, max_side))
            pixels = _to_srgb(upright, source.info.get("icc_profile"))
            clean = _pixels_only(pixels, target)
            out = io.BytesIO()
            clean.save(out, format=target, **options)
    except UnreadableImage:
        raise
    except _DECODE_ERRORS as exc:
        raise UnreadableImage(str(exc)) from exc
    return CleanImage(out.getvalue(), FORMAT_MIME[target], clean.width, clean.height)


def _header_orientation(image: Image.Image) -> int:
    """The EXIF orientation known without decoding pixels (a PNG's eXIf after its pixels is ignored)."""
    if isinstance(image, PngImagePlugin.PngImageFile) and "exif" not in image.info:
        return 1  # asking Pillow would decode the whole image first
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) else 1


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert colours from the embedded profile to sRGB, so dropping the profile keeps their look."""
    if not icc_profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a broken or unusual profile: keep the pixel values as they are
    return converted if converted is not None else image


def _pixels_only(image: Image.Image, target: str) -> Image.Image:
    """A copy whose ``info`` holds nothing an encoder would write back but transparency (part of the pixels).

    Pillow's PNG encoder copies the ICC profile from ``info`` and its JPEG encoder the comment, so
    ``info`` is emptied rather than trusting each encoder's defaults.
    """
    if target == "JPEG" and image.mode not in ("L", "RGB", "CMYK"):
        image = image.convert("RGB")
    clean = image.copy()
    transparency = image.info.get("transparency")
    clean.info = {"transparency": transparency} if transparency is not None and target != "JPEG" else {}
    return clean


def _encoder_options(source: Image.Image, target: str, data: bytes) -> dict[str, Any]:
    """Encode close to the source's quality: a JPEG reuses its own tables, a lossless WebP stays lossless."""
    if target == "JPEG":
        if isinstance(source, JpegImagePlugin.JpegImageFile) and getattr(source, "quantization", None):
            options: dict[str, Any] = {"qtables": source.quantization}
            sampling = JpegImagePlugin.get_sampling(source)
            if sampling != -1:
                options["subsampling"] = sampling
            return options
        return {"quality": JPEG_QUALITY}
    if target == "WEBP":
        if _webp_is_lossless(data):
            return {"lossless": True, "exact": True}
        return {"quality": WEBP_QUALITY}
    return {}


def _webp_is_lossless(data: bytes) -> bool:
    """Whether the (first) picture of a WebP file is a lossless VP8L bitstream."""
    offset = 12  # "RIFF" size "WEBP"
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if fourcc == b"VP8L":
            return True
        if fourcc == b"VP8 ":
            return False
        if fourcc == b"ANMF":  # an animation frame: a 16-byte header, then the frame's own chunks
            offset += 8 + 16
            continue
        offset += 8 + size + (size & 1)
    return False
