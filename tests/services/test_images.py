"""Re-encoding uploads: only the pixels survive (no EXIF/GPS, XMP, ICC, text, comments), upright, same format."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, PngImagePlugin

from server.services import images
from tests.images import (
    SRGB_ICC,
    XMP,
    assert_has_metadata,
    assert_no_metadata,
    dominant,
    phone_exif,
    phone_jpeg,
    rgb,
    two_halves,
)


def test_phone_jpeg_loses_exif_gps_xmp_icc_and_comment_and_is_turned_upright() -> None:
    data = phone_jpeg((64, 48), orientation=6)  # 6: turn 90 degrees clockwise to display
    assert_has_metadata(data)
    assert images.read_facts(data) == images.ImageFacts("image/jpeg", 48, 64)
    clean = images.reencode(data, max_pixels=10_000)
    assert (clean.mime, clean.width, clean.height) == ("image/jpeg", 48, 64)
    image = assert_no_metadata(clean.data)
    assert image.format == "JPEG" and image.size == (48, 64)
    # The stored left half (red) is at the top once turned clockwise.
    assert dominant(image, (24, 8)) == "red" and dominant(image, (24, 56)) == "blue"


@pytest.mark.parametrize(
    ("orientation", "size"),
    [(1, (64, 48)), (3, (64, 48)), (5, (48, 64)), (8, (48, 64))],
)
def test_every_exif_orientation_gives_the_displayed_size(orientation: int, size: tuple[int, int]) -> None:
    clean = images.reencode(phone_jpeg((64, 48), orientation=orientation), max_pixels=10_000)
    assert (clean.width, clean.height) == size
    assert assert_no_metadata(clean.data).size == size


def test_png_loses_text_chunks_exif_xmp_and_icc_but_keeps_alpha_and_exact_pixels() -> None:
    source = two_halves((20, 10), "RGBA")
    source.putpixel((0, 0), (10, 20, 30, 40))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ivan Petrov")
    info.add_itxt("Comment", "secret note")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", pnginfo=info, exif=phone_exif(), icc_profile=SRGB_ICC)
    clean = images.reencode(buffer.getvalue(), max_pixels=10_000)
    image = assert_no_metadata(clean.data)
    assert clean.mime == "image/png" and image.format == "PNG" and image.mode == "RGBA"
    assert image.tobytes() == source.tobytes()  # sRGB to sRGB: the pixels are untouched


def test_palette_png_keeps_its_transparency() -> None:
    source = Image.new("P", (8, 8), 0)
    source.putpalette([0, 0, 0, 255, 0, 0])
    source.putpixel((1, 1), 1)
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", transparency=0)
    image = Image.open(io.BytesIO(images.reencode(buffer.getvalue(), max_pixels=100).data))
    assert image.mode == "P" and image.info == {"transparency": 0}
    rgba = image.convert("RGBA")
    assert rgba.getpixel((0, 0)) == (0, 0, 0, 0) and rgba.getpixel((1, 1)) == (255, 0, 0, 255)


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_loses_exif_xmp_and_icc_and_a_lossless_one_stays_exact(lossless: bool) -> None:
    source = two_halves((32, 16))
    buffer = io.BytesIO()
    source.save(buffer, format="WEBP", lossless=lossless, exif=phone_exif().tobytes(), xmp=XMP, icc_profile=SRGB_ICC)
    clean = images.reencode(buffer.getvalue(), max_pixels=10_000)
    image = assert_no_metadata(clean.data)
    assert clean.mime == "image/webp" and image.format == "WEBP" and image.size == (32, 16)
    if lossless:
        assert image.convert("RGB").tobytes() == source.tobytes()


def test_multi_picture_jpeg_from_a_phone_is_a_plain_jpeg_of_its_main_picture() -> None:
    """Phones add depth maps and HDR gain maps as extra pictures (Pillow calls the file MPO)."""
    buffer = io.BytesIO()
    two_halves((40, 30)).save(
        buffer,
        format="MPO",
        save_all=True,
        append_images=[Image.new("RGB", (40, 30), (0, 255, 0))],
        exif=phone_exif(),
    )
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert images.read_facts(data).mime == "image/jpeg"
    clean = images.reencode(data, max_pixels=10_000)
    image = assert_no_metadata(clean.data)
    assert clean.mime == "image/jpeg" and image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    assert dominant(image, (5, 15)) == "red"


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def rgb_profile(
    red: tuple[float, float, float], green: tuple[float, float, float], blue: tuple[float, float, float]
) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile with the given (D50) colorants and gamma 2.2."""
    xyz = {
        b"wtpt": (0.9642, 1.0, 0.8249),
        b"rXYZ": red,
        b"gXYZ": green,
        b"bXYZ": blue,
    }
    tags = [(sig, b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in value)) for sig, value in xyz.items()]
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"  # gamma 2.2 (u8.8), padded
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)


def test_colours_in_another_profile_are_converted_to_srgb_before_the_profile_is_dropped() -> None:
    """Without its profile a photo must still look the same: here a profile whose red and blue primaries are
    swapped, so a pixel stored as "red" really is blue, and must be blue once stored without the profile."""
    swapped = rgb_profile(SRGB_BLUE, SRGB_GREEN, SRGB_RED)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG", icc_profile=swapped)
    image = assert_no_metadata(images.reencode(buffer.getvalue(), max_pixels=100).data)
    red, green, blue = rgb(image, (0, 0))
    assert blue > 150 and red < 80 and green < 80, (red, green, blue)


def test_an_unusable_profile_is_dropped_and_the_pixels_kept() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG", icc_profile=b"not a profile at all")
    image = assert_no_metadata(images.reencode(buffer.getvalue(), max_pixels=100).data)
    assert rgb(image, (0, 0)) == (200, 30, 30)


def test_pass_photos_become_jpeg_whatever_they_were() -> None:
    buffer = io.BytesIO()
    two_halves((30, 40), "RGBA").save(buffer, format="PNG", exif=phone_exif())
    clean = images.reencode(buffer.getvalue(), max_pixels=10_000, output_mime="image/jpeg")
    image = assert_no_metadata(clean.data)
    assert clean.mime == "image/jpeg" and image.format == "JPEG" and image.mode == "RGB"


def test_animation_keeps_its_first_picture() -> None:
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    image = Image.open(io.BytesIO(images.reencode(buffer.getvalue(), max_pixels=100).data))
    assert getattr(image, "n_frames", 1) == 1 and rgb(image, (0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"just some text",
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        phone_jpeg()[:200],  # truncated
    ],
)
def test_unreadable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(images.UnreadableImage):
        images.reencode(data, max_pixels=10_000)


def test_other_formats_and_too_many_pixels_are_refused_before_decoding() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    assert images.read_facts(gif.getvalue()).mime == "image/gif"
    with pytest.raises(images.UnreadableImage, match="GIF"):
        images.reencode(gif.getvalue(), max_pixels=100)
    with pytest.raises(images.UnreadableImage, match="pixels"):
        images.reencode(phone_jpeg((64, 48)), max_pixels=64 * 48 - 1)
