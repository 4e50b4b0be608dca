"""Delivery (``/<cloud>/<resource_type>/<type>/...``) and signed downloads (``/v1_1/<cloud>/<rt>/download``).

Transformations are accepted and ignored: the original bytes are served. ``private`` and
``authenticated`` assets need a valid ``s--SIGNATURE--`` component (or the signed download API);
plain URLs get 401, as Cloudinary answers them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from .account import DELIVERY_TYPES, RESOURCE_TYPES, Account
from .errors import ApiError, not_found, unauthorized
from .media import content_type_for
from .responses import HttpResponse
from .signatures import ParamValue, url_signature_matches
from .store import StoredResource
from .upload_api import authenticate_signed_request, flag_param, text_param

SIGNATURE_COMPONENT = re.compile(r"^s--([A-Za-z0-9_-]+)--$")
VERSION_COMPONENT = re.compile(r"^v\d+$")


def cld_error(status: int, message: str, head_only: bool) -> HttpResponse:
    """Cloudinary's CDN reports delivery errors in the X-Cld-Error header, not as JSON."""
    return HttpResponse(
        status, b"", {"X-Cld-Error": message, "Content-Type": "text/plain"}, send_body=not head_only
    )


def asset_response(
    account: Account, resource: StoredResource, head_only: bool, attachment: bool = False
) -> HttpResponse:
    name = resource.public_id.rsplit("/", 1)[-1]
    if resource.format and resource.resource_type != "raw":
        name += f".{resource.format}"
    headers = {
        "Content-Type": content_type_for(name),
        "ETag": f'"{resource.etag}"',
        "Last-Modified": resource.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "Cache-Control": "public, max-age=2592000",
    }
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if not head_only:
        account.count_request(delivered_bytes=resource.size)
    return HttpResponse(200, resource.data, headers, send_body=not head_only)


def find_asset(
    account: Account, resource_type: str, delivery_type: str, requested: str
) -> StoredResource | None:
    """Images and videos are asked for with an extension of choice; raw public_ids include theirs."""
    exact = account.store.get(resource_type, delivery_type, requested)
    if exact is not None or resource_type == "raw" or "." not in requested.rsplit("/", 1)[-1]:
        return exact
    return account.store.get(resource_type, delivery_type, requested.rsplit(".", 1)[0])


def handle_delivery(account: Account, segments: list[str], head_only: bool) -> HttpResponse:
    """``segments`` are the raw (still percent-encoded) path components after the cloud name."""
    if len(segments) < 3:
        return cld_error(404, "Resource not found", head_only)
    resource_type, delivery_type, rest = segments[0], segments[1], segments[2:]
    if resource_type not in RESOURCE_TYPES or delivery_type not in DELIVERY_TYPES:
        return cld_error(404, "Resource not found", head_only)

    signature: str | None = None
    match = SIGNATURE_COMPONENT.match(rest[0])
    if match:
        signature, rest = match.group(1), rest[1:]
    versions = [index for index, component in enumerate(rest) if VERSION_COMPONENT.match(component)]
    if versions:
        # Everything after the version is the public_id; everything before, transformations.
        public_id_parts = rest[versions[0] + 1 :]
        signed_parts = rest[: versions[0]] + public_id_parts
    else:
        # The SDK always adds a version when the public_id has folders, so without one the
        # public_id is the last component.
        public_id_parts = rest[-1:]
        signed_parts = rest
    if not public_id_parts or not public_id_parts[0]:
        return cld_error(404, "Resource not found", head_only)

    if signature is not None and not url_signature_matches(
        "/".join(signed_parts), signature, account.api_secret
    ):
        return cld_error(401, "Invalid signature", head_only)
    if delivery_type != "upload" and signature is None:
        return cld_error(401, f"Resource is {delivery_type}: a signed URL is required", head_only)

    resource = find_asset(account, resource_type, delivery_type, unquote("/".join(public_id_parts)))
    if resource is None:
        return cld_error(404, "Resource not found", head_only)
    return asset_response(account, resource, head_only)


def handle_download(
    account: Account,
    resource_type: str,
    params: dict[str, ParamValue],
    authorization: str | None,
    head_only: bool,
) -> HttpResponse:
    if resource_type not in RESOURCE_TYPES:
        raise not_found(f"Invalid resource type {resource_type}")
    authenticate_signed_request(account, params, authorization)
    expires_at = text_param(params, "expires_at")
    if expires_at:
        if not expires_at.isdigit():
            raise ApiError(400, f"Invalid expires_at {expires_at}")
        if int(expires_at) < account.clock():
            raise unauthorized("Download link has expired")
    public_id = text_param(params, "public_id")
    delivery_type = text_param(params, "type", "upload") or "upload"
    resource = account.store.get(resource_type, delivery_type, public_id)
    if resource is None:
        raise not_found(f"Resource not found - {public_id}")
    return asset_response(
        account, resource, head_only, attachment=flag_param(params, "attachment", default=False)
    )
