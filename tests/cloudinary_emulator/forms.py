"""Request bodies and query strings as Cloudinary reads them: ``name[]`` collects a list."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from email.message import Message
from urllib.parse import parse_qsl

from .errors import bad_request
from .signatures import ParamValue


@dataclass(frozen=True)
class UploadedFile:
    data: bytes
    filename: str | None


def add_param(params: dict[str, ParamValue], name: str, value: str) -> None:
    if name.endswith("[]"):
        existing = params.setdefault(name[:-2], [])
        if isinstance(existing, list):
            existing.append(value)
        return
    params[name] = value


def parse_query(query: str) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        add_param(params, name, value)
    return params


def _header_params(header_block: bytes) -> Message:
    message = Message()
    for line in header_block.decode("utf-8", "replace").split("\r\n"):
        name, separator, value = line.partition(":")
        if separator:
            message[name.strip()] = value.strip()
    return message


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, ParamValue], UploadedFile | None]:
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("Malformed multipart body: no boundary")
    params: dict[str, ParamValue] = {}
    uploaded: UploadedFile | None = None
    delimiter = b"--" + boundary.encode()
    for raw_part in body.split(delimiter)[1:]:
        if raw_part.startswith(b"--"):
            break
        part = raw_part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        header_block, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            raise bad_request("Malformed multipart body: part without headers")
        part_headers = _header_params(header_block)
        name = part_headers.get_param("name", header="content-disposition")
        filename = part_headers.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            continue
        if name == "file" and isinstance(filename, str):
            uploaded = UploadedFile(content, filename)
        elif name == "file":
            # No filename: the SDK sends a URL or data URI as a plain field (handle_file_parameter),
            # resolved like the urlencoded `file` parameter (a data URI is decoded).
            add_param(params, name, content.decode("utf-8"))
        else:
            add_param(params, name, content.decode("utf-8"))
    return params, uploaded


def parse_urlencoded(body: bytes) -> tuple[dict[str, ParamValue], UploadedFile | None]:
    params = parse_query(body.decode("utf-8"))
    file_value = params.pop("file", None)
    if isinstance(file_value, str) and file_value:
        params["file"] = file_value
    return params, None


def file_from_string(value: str) -> UploadedFile:
    """The ``file`` parameter given as text: a data URI is decoded; remote fetching needs the internet."""
    if value.startswith("data:") and ";base64," in value:
        try:
            return UploadedFile(base64.b64decode(value.split(";base64,", 1)[1], validate=False), None)
        except binascii.Error as error:
            raise bad_request("Invalid data URI") from error
    raise bad_request(f"Invalid file parameter: the emulator cannot fetch remote files ({value[:80]})")
