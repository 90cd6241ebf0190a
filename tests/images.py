"""Images as phones and editors make them, with the metadata that must not survive an upload, and the check."""

from __future__ import annotations

import io

from PIL import ExifTags, Image, ImageCms

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LEAKS = (b"PhoneCo", b"Ivan Petrov", b"55.7558", b"GPS", b"xmpmeta", b"secret note")


def phone_exif(orientation: int = 1) -> Image.Exif:
    """What a phone writes: orientation, make, model, time and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Model] = "PhoneCo X 12"
    exif[ExifTags.Base.DateTime] = "2026:06:01 08:15:00"
    exif[ExifTags.Base.Artist] = "Ivan Petrov"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (55.0, 45.0, 20.88)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (37.0, 37.0, 3.6)
    gps[ExifTags.GPS.GPSProcessingMethod] = b"ASCII\x00\x00\x0055.7558"
    return exif


def two_halves(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: shows where a rotation put things."""
    width, height = size
    image = Image.new(mode, size, (0, 0, 255, 255)[: len(mode)])
    image.paste((255, 0, 0, 255)[: len(mode)], (0, 0, width // 2, height))
    return image


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="55,45.348N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def phone_jpeg(size: tuple[int, int] = (64, 48), orientation: int = 6) -> bytes:
    """A JPEG as a phone sends it: pixels stored sideways plus EXIF/GPS, XMP, an ICC profile and a comment."""
    buffer = io.BytesIO()
    two_halves(size).save(
        buffer,
        format="JPEG",
        quality=95,
        exif=phone_exif(orientation),
        xmp=XMP,
        icc_profile=SRGB_ICC,
        comment=b"secret note",
    )
    return buffer.getvalue()


def assert_no_metadata(data: bytes) -> Image.Image:
    """Open the clean bytes and check that nothing but pixels is left; returns the image."""
    for leak in LEAKS:
        assert leak not in data, leak
    image = Image.open(io.BytesIO(data))
    assert dict(image.getexif()) == {}
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "Author", "Comment"):
        assert key not in image.info, key
    return image


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    """One pixel as red, green, blue."""
    pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]


def dominant(image: Image.Image, xy: tuple[int, int]) -> str:
    """``red`` or ``blue``, whichever channel wins at ``xy`` (JPEG colours are approximate)."""
    red, _, blue = rgb(image, xy)
    return "red" if red > blue else "blue"


def assert_has_metadata(data: bytes) -> None:
    """The upload really carries what must be removed (so that a test of its removal means something)."""
    for leak in LEAKS:
        assert leak in data, leak
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
