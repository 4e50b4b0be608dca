"""Assets as the JSON Cloudinary answers with (upload responses, Admin API listings and details)."""

from __future__ import annotations

from typing import Any

from .account import Account
from .signatures import response_signature
from .store import StoredResource


def timestamp_text(resource: StoredResource) -> str:
    return resource.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def listed_resource(account: Account, resource: StoredResource, *, with_tags: bool) -> dict[str, Any]:
    url = account.delivery_url(resource)
    body: dict[str, Any] = {
        "asset_id": resource.asset_id,
        "public_id": resource.public_id,
        "version": resource.version,
        "version_id": resource.version_id,
        "resource_type": resource.resource_type,
        "type": resource.delivery_type,
        "created_at": timestamp_text(resource),
        "bytes": resource.size,
        "folder": resource.folder,
        "asset_folder": resource.folder,
        "url": url,
        "secure_url": url,
    }
    # Raw assets carry their extension in the public_id and have no separate format.
    if resource.format and resource.resource_type != "raw":
        body["format"] = resource.format
    if resource.width is not None and resource.height is not None:
        body["width"] = resource.width
        body["height"] = resource.height
    if with_tags:
        body["tags"] = list(resource.tags)
    return body


def upload_response(account: Account, resource: StoredResource, *, existing: bool = False) -> dict[str, Any]:
    body = listed_resource(account, resource, with_tags=True)
    body.update(
        {
            "signature": response_signature(resource.public_id, resource.version, account.api_secret),
            "etag": resource.etag,
            "placeholder": False,
            "original_filename": resource.original_filename or "file",
            "display_name": resource.public_id.rsplit("/", 1)[-1],
            "api_key": account.api_key,
        }
    )
    if existing:
        body["existing"] = True
    return body


def resource_details(account: Account, resource: StoredResource) -> dict[str, Any]:
    body = listed_resource(account, resource, with_tags=True)
    body.update({"etag": resource.etag, "placeholder": False, "derived": []})
    return body
