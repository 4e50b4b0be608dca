"""Just enough media sniffing to answer like Cloudinary: format, pixel size and a Content-Type."""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass

IMAGE_FORMATS = frozenset({"png", "jpg", "gif", "webp", "bmp"})
VIDEO_EXTENSIONS = frozenset({"mp4", "webm", "mov", "ogv", "mkv", "avi", "flv", "wmv", "3gp", "mpeg"})


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int | None
    height: int | None


def sniff_image(data: bytes) -> ImageInfo | None:
    """Format and dimensions from the file header, or None when it is no image we know."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("png", width, height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("gif", width, height)
    if data.startswith(b"\xff\xd8"):
        width_height = _jpeg_dimensions(data)
        return ImageInfo("jpg", *(width_height or (None, None)))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageInfo("webp", None, None)
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return ImageInfo("bmp", width, abs(height))
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (segment_length,) = struct.unpack(">H", data[position + 2 : position + 4])
        # SOF0..SOF15 carry the frame size; C4, C8 and CC are other tables with the same prefix.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + segment_length
    return None


def looks_like_video(data: bytes) -> str | None:
    if data[4:8] == b"ftyp":
        return "mov" if data[8:10] == b"qt" else "mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


def extension_of(filename: str | None) -> str | None:
    if not filename or "." not in filename.rsplit("/", 1)[-1]:
        return None
    return filename.rsplit(".", 1)[1].lower() or None


def guess_resource_type(data: bytes, filename: str | None) -> str:
    """``resource_type=auto``: what Cloudinary would classify the upload as."""
    if sniff_image(data) is not None:
        return "image"
    if looks_like_video(data) or extension_of(filename) in VIDEO_EXTENSIONS:
        return "video"
    return "raw"


def content_type_for(name_with_extension: str) -> str:
    guessed, _ = mimetypes.guess_type(name_with_extension)
    return guessed or "application/octet-stream"
