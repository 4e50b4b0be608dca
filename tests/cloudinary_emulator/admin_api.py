"""Admin API (Basic auth, rate limited): ping, usage, resource listing, details and bulk deletion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .account import DELIVERY_TYPES, RESOURCE_TYPES, Account
from .errors import ApiError, bad_request, not_found
from .representations import listed_resource, resource_details
from .signatures import ParamValue
from .store import StoredResource
from .upload_api import text_param

DEFAULT_MAX_RESULTS = 10
MAX_MAX_RESULTS = 500
MAX_PUBLIC_IDS_PER_CALL = 100
MAX_DELETIONS_PER_CALL = 1000


def flag(params: dict[str, ParamValue], name: str) -> bool:
    return text_param(params, name).lower() in ("1", "true")


def max_results_of(params: dict[str, ParamValue]) -> int:
    text = text_param(params, "max_results")
    if not text:
        return DEFAULT_MAX_RESULTS
    if not text.isdigit() or not 1 <= int(text) <= MAX_MAX_RESULTS:
        raise bad_request(f"max_results should be between 1 and {MAX_MAX_RESULTS}, got {text}")
    return int(text)


def newest_first(params: dict[str, ParamValue]) -> bool:
    direction = text_param(params, "direction", "desc").lower()
    if direction not in ("asc", "desc", "1", "-1"):
        raise bad_request(f"Invalid direction {direction}")
    return direction in ("desc", "-1")


def check_types(resource_type: str, delivery_type: str | None = None) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise not_found(f"Invalid resource type {resource_type}")
    if delivery_type is not None and delivery_type not in DELIVERY_TYPES:
        raise not_found(f"Invalid type {delivery_type}")


def list_page(
    account: Account, matching: list[StoredResource], params: dict[str, ParamValue]
) -> dict[str, Any]:
    cursor = text_param(params, "next_cursor") or None
    try:
        page = account.store.page(matching, max_results_of(params), cursor, newest_first(params))
    except ValueError as error:
        raise bad_request(f"Invalid next_cursor {cursor}") from error
    with_tags = flag(params, "tags")
    body: dict[str, Any] = {
        "resources": [listed_resource(account, resource, with_tags=with_tags) for resource in page.resources]
    }
    if page.next_cursor:
        body["next_cursor"] = page.next_cursor
    return body


def usage(account: Account) -> dict[str, Any]:
    resources = account.store.all()
    stored_bytes = sum(resource.size for resource in resources)
    now = datetime.fromtimestamp(account.clock(), UTC)
    return {
        "plan": "Free",
        "last_updated": now.strftime("%Y-%m-%d"),
        "date_requested": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "transformations": {"usage": 0, "credits_usage": 0.0},
        "objects": {"usage": len(resources)},
        "bandwidth": {"usage": account.delivered_bytes, "credits_usage": 0.0},
        "storage": {"usage": stored_bytes, "credits_usage": 0.0},
        "credits": {"usage": 0.0, "limit": 25.0, "used_percent": 0.0},
        "requests": account.request_count,
        "resources": len(resources),
        "derived_resources": 0,
        "media_limits": {
            "image_max_size_bytes": account.limits.image_max_size_bytes,
            "video_max_size_bytes": account.limits.video_max_size_bytes,
            "raw_max_size_bytes": account.limits.raw_max_size_bytes,
            "image_max_px": 25000000,
            "asset_max_total_px": 50000000,
        },
    }


def deletion_result(
    deleted: list[StoredResource], missing: list[str], next_cursor: str | None
) -> dict[str, Any]:
    outcome = {resource.public_id: "deleted" for resource in deleted}
    outcome.update(dict.fromkeys(missing, "not_found"))
    body: dict[str, Any] = {
        "deleted": outcome,
        "deleted_counts": {resource.public_id: {"original": 1, "derived": 0} for resource in deleted},
        "partial": next_cursor is not None,
    }
    if next_cursor:
        body["next_cursor"] = next_cursor
    return body


def delete_resources(
    account: Account, resource_type: str, delivery_type: str | None, tag: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    public_ids = body.get("public_ids")
    if public_ids is not None:
        if not isinstance(public_ids, list) or not all(isinstance(item, str) for item in public_ids):
            raise bad_request("public_ids must be a list of strings")
        if len(public_ids) > MAX_PUBLIC_IDS_PER_CALL:
            raise bad_request(
                f"Too many public_ids ({len(public_ids)}); at most {MAX_PUBLIC_IDS_PER_CALL} per call"
            )
        found = [
            account.store.get(resource_type, delivery_type or "upload", public_id) for public_id in public_ids
        ]
        deleted = [resource for resource in found if resource is not None]
        account.store.delete_many(deleted)
        missing = [
            public_id for public_id, resource in zip(public_ids, found, strict=True) if resource is None
        ]
        return deletion_result(deleted, missing, None)

    prefix = body.get("prefix")
    if tag is None and prefix is None and body.get("all") is not True:
        raise bad_request("Must specify public_ids, prefix or all")
    matching = account.store.select(resource_type, delivery_type, str(prefix or ""), tag)
    batch = matching[:MAX_DELETIONS_PER_CALL]
    account.store.delete_many(batch)
    # What is left is reached by calling again, as Cloudinary's `partial` answers ask.
    more = "more" if len(matching) > MAX_DELETIONS_PER_CALL else None
    return deletion_result(batch, [], more)


def handle_admin(
    account: Account, method: str, segments: list[str], params: dict[str, ParamValue], json_body: bytes
) -> dict[str, Any]:
    if method == "GET" and segments == ["ping"]:
        return {"status": "ok"}
    if method == "GET" and segments[:1] == ["usage"] and len(segments) <= 2:
        return usage(account)
    if segments[:1] != ["resources"]:
        raise not_found(f"Unsupported Admin API endpoint /{'/'.join(segments)}")
    rest = segments[1:]
    if method == "GET":
        return get_resources(account, rest, params)
    if method == "DELETE" and len(rest) in (2, 3):
        try:
            body = json.loads(json_body or b"{}")
        except json.JSONDecodeError as error:
            raise bad_request("Malformed JSON body") from error
        if not isinstance(body, dict):
            raise bad_request("Malformed JSON body")
        body.update({name: value for name, value in params.items() if name not in body})
        if len(rest) == 3 and rest[1] == "tags":
            check_types(rest[0])
            return delete_resources(account, rest[0], None, rest[2], body)
        if len(rest) == 2:
            check_types(rest[0], rest[1])
            return delete_resources(account, rest[0], rest[1], None, body)
    raise ApiError(404, f"Unsupported Admin API call {method} /resources/{'/'.join(rest)}")


def get_resources(account: Account, rest: list[str], params: dict[str, ParamValue]) -> dict[str, Any]:
    if not rest:
        return {"resource_types": sorted({resource.resource_type for resource in account.store.all()})}
    resource_type = rest[0]
    if len(rest) == 1:
        check_types(resource_type)
        matching = account.store.select(resource_type, None, text_param(params, "prefix"))
        return list_page(account, matching, params)
    if len(rest) == 3 and rest[1] == "tags":
        check_types(resource_type)
        return list_page(account, account.store.select(resource_type, None, "", rest[2]), params)
    delivery_type = rest[1]
    check_types(resource_type, delivery_type)
    if len(rest) == 2:
        public_ids = params.get("public_ids")
        if public_ids is not None:
            return by_ids(account, resource_type, delivery_type, public_ids, params)
        matching = account.store.select(resource_type, delivery_type, text_param(params, "prefix"))
        return list_page(account, matching, params)
    public_id = "/".join(rest[2:])
    resource = account.store.get(resource_type, delivery_type, public_id)
    if resource is None:
        raise not_found(f"Resource not found - {public_id}")
    return resource_details(account, resource)


def by_ids(
    account: Account,
    resource_type: str,
    delivery_type: str,
    public_ids: ParamValue,
    params: dict[str, ParamValue],
) -> dict[str, Any]:
    ids = public_ids if isinstance(public_ids, list) else [public_ids]
    if len(ids) > MAX_PUBLIC_IDS_PER_CALL:
        raise bad_request(f"Too many public_ids ({len(ids)}); at most {MAX_PUBLIC_IDS_PER_CALL} per call")
    found = [account.store.get(resource_type, delivery_type, public_id) for public_id in ids]
    with_tags = flag(params, "tags")
    return {
        "resources": [
            listed_resource(account, resource, with_tags=with_tags)
            for resource in found
            if resource is not None
        ]
    }
