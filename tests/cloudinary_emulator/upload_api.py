"""Upload API: ``POST /v1_1/<cloud>/<resource_type>/upload`` and ``.../destroy``."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from .account import DELIVERY_TYPES, RESOURCE_TYPES, Account
from .errors import ApiError, bad_request, unauthorized
from .forms import UploadedFile, file_from_string
from .media import extension_of, guess_resource_type, looks_like_video, sniff_image
from .representations import upload_response
from .signatures import ParamValue, signature_matches, string_to_sign
from .store import ChunkProgress, StoredResource

STALE_AFTER_SECONDS = 3600
RANDOM_ALPHABET = string.ascii_lowercase + string.digits
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def text_param(params: dict[str, ParamValue], name: str, default: str = "") -> str:
    value = params.get(name, default)
    return ",".join(value) if isinstance(value, list) else value


def flag_param(params: dict[str, ParamValue], name: str, default: bool) -> bool:
    value = text_param(params, name)
    if value == "":
        return default
    return value.lower() in ("1", "true")


def authenticate_signed_request(
    account: Account, params: dict[str, ParamValue], authorization: str | None
) -> None:
    """Signed-request rules shared by upload, destroy and download; Basic auth is the documented shortcut."""
    if authorization and "signature" not in params:
        account.check_basic_auth(authorization)
        return
    account.check_api_key(text_param(params, "api_key"))
    timestamp_text = text_param(params, "timestamp")
    if not timestamp_text:
        raise bad_request("Missing required parameter - timestamp")
    try:
        timestamp = int(timestamp_text)
    except ValueError as error:
        raise bad_request(f"Invalid timestamp {timestamp_text}") from error
    if account.clock() - timestamp > STALE_AFTER_SECONDS:
        reported = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
        raise unauthorized(f"Stale request - reported time is {reported} which is more than 1 hour ago")
    signature = text_param(params, "signature")
    if not signature_matches(params, signature, account.api_secret, account.allowed_signature_algorithms):
        raise unauthorized(f"Invalid Signature {signature}. String to sign - '{string_to_sign(params)}'.")


def check_resource_type(resource_type: str, allow_auto: bool) -> None:
    if resource_type not in RESOURCE_TYPES and not (allow_auto and resource_type == "auto"):
        raise ApiError(404, f"Invalid resource type {resource_type}")


def random_suffix(length: int) -> str:
    return "".join(secrets.choice(RANDOM_ALPHABET) for _ in range(length))


def choose_public_id(params: dict[str, ParamValue], resource_type: str, filename: str | None) -> str:
    folder = text_param(params, "folder").strip("/")
    explicit = text_param(params, "public_id")
    extension = extension_of(filename)
    if explicit:
        public_id = explicit
    elif flag_param(params, "use_filename", default=False) and filename:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        stem = base.rsplit(".", 1)[0] if extension else base
        stem = re.sub(r"[^\w\-]+", "_", stem) or "file"
        if flag_param(params, "unique_filename", default=True):
            stem = f"{stem}_{random_suffix(6)}"
        # Raw files keep their extension in the public_id; images and videos carry it as `format`.
        public_id = f"{stem}.{extension}" if resource_type == "raw" and extension else stem
    else:
        public_id = random_suffix(20)
        if resource_type == "raw" and extension:
            public_id = f"{public_id}.{extension}"
    return f"{folder}/{public_id}" if folder else public_id


def describe_media(
    resource_type: str, data: bytes, filename: str | None
) -> tuple[str | None, int | None, int | None]:
    if resource_type == "image":
        info = sniff_image(data)
        if info is None:
            raise bad_request("Invalid image file")
        return info.format, info.width, info.height
    if resource_type == "video":
        return looks_like_video(data) or extension_of(filename) or "mp4", None, None
    return extension_of(filename), None, None


def check_size(account: Account, resource_type: str, size: int) -> None:
    maximum = account.limits.for_type(resource_type)
    if size > maximum:
        raise bad_request(f"File size too large. Got {size}. Maximum is {maximum}.")


def resolve_file(params: dict[str, ParamValue], uploaded: UploadedFile | None) -> UploadedFile:
    if uploaded is not None:
        return uploaded
    value = text_param(params, "file")
    if not value:
        raise bad_request("Missing required parameter - file")
    return file_from_string(value)


def handle_upload(
    account: Account,
    url_resource_type: str,
    params: dict[str, ParamValue],
    uploaded: UploadedFile | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    check_resource_type(url_resource_type, allow_auto=True)
    authenticate_signed_request(account, params, headers.get("authorization"))
    upload = resolve_file(params, uploaded)

    planned_public_id: str | None = None
    content_range = headers.get("content-range")
    if content_range:
        progress = receive_chunk(account, url_resource_type, params, upload, content_range, headers)
        if progress.assembled is None:
            return {"done": False, "public_id": progress.public_id, "bytes": progress.received}
        upload = UploadedFile(progress.assembled, upload.filename)
        planned_public_id = progress.public_id

    resource_type = (
        guess_resource_type(upload.data, upload.filename)
        if url_resource_type == "auto"
        else url_resource_type
    )
    delivery_type = text_param(params, "type", "upload") or "upload"
    if delivery_type not in DELIVERY_TYPES:
        raise bad_request(f"Invalid type parameter {delivery_type}")
    check_size(account, resource_type, len(upload.data))
    media_format, width, height = describe_media(resource_type, upload.data, upload.filename)
    public_id = planned_public_id or choose_public_id(params, resource_type, upload.filename)

    existing = account.store.get(resource_type, delivery_type, public_id)
    if existing is not None and not flag_param(params, "overwrite", default=True):
        return upload_response(account, existing, existing=True)

    tags = tuple(tag.strip() for tag in text_param(params, "tags").split(",") if tag.strip())
    filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1] if upload.filename else None
    stored = account.store.put(
        StoredResource(
            public_id=public_id,
            resource_type=resource_type,
            delivery_type=delivery_type,
            data=upload.data,
            format=media_format,
            tags=tags,
            width=width,
            height=height,
            original_filename=filename.rsplit(".", 1)[0] if filename else None,
        )
    )
    return upload_response(account, stored)


def receive_chunk(
    account: Account,
    url_resource_type: str,
    params: dict[str, ParamValue],
    chunk: UploadedFile,
    content_range: str,
    headers: dict[str, str],
) -> ChunkProgress:
    match = CONTENT_RANGE.match(content_range.strip())
    upload_id = headers.get("x-unique-upload-id", "")
    if match is None or not upload_id:
        raise bad_request("Invalid Content-Range or missing X-Unique-Upload-Id header")
    start, end, total = (int(group) for group in match.groups())
    if end - start + 1 != len(chunk.data):
        raise bad_request(f"Chunk size {len(chunk.data)} does not match Content-Range {content_range}")
    if url_resource_type != "auto":
        check_size(account, url_resource_type, total)
    naming_type = "raw" if url_resource_type == "auto" else url_resource_type
    public_id = choose_public_id(params, naming_type, chunk.filename)
    return account.chunks.add(upload_id, start, total, chunk.data, public_id)


def handle_destroy(
    account: Account, url_resource_type: str, params: dict[str, ParamValue], headers: dict[str, str]
) -> dict[str, Any]:
    check_resource_type(url_resource_type, allow_auto=False)
    authenticate_signed_request(account, params, headers.get("authorization"))
    public_id = text_param(params, "public_id")
    if not public_id:
        raise bad_request("Missing required parameter - public_id")
    delivery_type = text_param(params, "type", "upload") or "upload"
    deleted = account.store.delete(url_resource_type, delivery_type, public_id)
    return {"result": "ok" if deleted else "not found"}
