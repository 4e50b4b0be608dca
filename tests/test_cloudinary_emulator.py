"""The Cloudinary emulator, exercised only through the real SDK (cloudinary 1.46) over loopback HTTP.

Tests taking ``cloudinary_target`` also run against the real service when CLOUDINARY_LIVE_URL is set;
tests taking ``cloudinary_emulator`` inject faults or look inside, and are emulator-only.
"""

from __future__ import annotations

import base64
import io
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cloudinary
import cloudinary.api
import cloudinary.exceptions
import cloudinary.uploader
import cloudinary.utils
import pytest
from PIL import Image

from tests.cloudinary_emulator import CloudinaryEmulator, EndpointKind, FaultKind
from tests.cloudinary_emulator.fixtures import CloudinaryTarget

MB = 1024 * 1024
# Enough of an ISO-BMFF header for the emulator (and Cloudinary's sniffing) to call it MP4.
MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: Message
    body: bytes


# Loopback must never go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, method: str = "GET") -> Fetched:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - http URLs built by the SDK
    try:
        with _opener.open(request, timeout=10) as response:
            return Fetched(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Fetched(error.code, error.headers, error.read())


def png_bytes(width: int = 12, height: int = 7, color: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"emulator-tests/{prefix}-{uuid.uuid4().hex[:10]}"


# Round trips: upload -> list -> deliver -> delete


def test_image_upload__round_trips_through_listing_delivery_and_destroy(
    cloudinary_target: CloudinaryTarget,
) -> None:
    image = png_bytes(12, 7)
    folder = unique("images")

    uploaded = cloudinary.uploader.upload(
        image, folder=folder, use_filename=True, filename="class-photo.png", tags=["kidoo", "gallery"]
    )

    assert uploaded["public_id"].startswith(f"{folder}/class-photo_")
    assert uploaded["format"] == "png"
    assert (uploaded["width"], uploaded["height"]) == (12, 7)
    assert uploaded["bytes"] == len(image)
    assert uploaded["resource_type"] == "image"
    assert uploaded["type"] == "upload"
    assert isinstance(uploaded["version"], int)
    assert sorted(uploaded["tags"]) == ["gallery", "kidoo"]
    assert cloudinary.utils.verify_api_response_signature(
        uploaded["public_id"], uploaded["version"], uploaded["signature"]
    )

    listed = cloudinary.api.resources(type="upload", prefix=folder, tags=True)
    assert [(item["public_id"], sorted(item["tags"])) for item in listed["resources"]] == [
        (uploaded["public_id"], ["gallery", "kidoo"])
    ]

    delivered = fetch(uploaded["secure_url"])
    assert delivered.status == 200
    assert delivered.body == image
    assert delivered.headers["Content-Type"] == "image/png"
    assert delivered.headers["Content-Length"] == str(len(image))

    destroyed = cloudinary.uploader.destroy(uploaded["public_id"], invalidate=True)
    # Besides the result, the SDK adds the answer's X-Request-Id (Cloudinary sends one; so does the emulator).
    assert destroyed == {"result": "ok", "request_id": destroyed["request_id"]}
    assert destroyed["request_id"]
    assert fetch(uploaded["url"]).status == 404
    assert cloudinary.api.resources(type="upload", prefix=folder)["resources"] == []
    assert cloudinary.uploader.destroy(uploaded["public_id"])["result"] == "not found"


def test_raw_upload__keeps_the_extension_in_the_public_id_and_round_trips(
    cloudinary_target: CloudinaryTarget,
) -> None:
    document = b"name,age\nAda,4\n"
    folder = unique("raw")

    uploaded = cloudinary.uploader.upload(
        io.BytesIO(document), resource_type="raw", folder=folder, use_filename=True, filename="roster.csv"
    )

    assert uploaded["public_id"].startswith(f"{folder}/roster_")
    assert uploaded["public_id"].endswith(".csv")
    assert "format" not in uploaded
    assert uploaded["url"].endswith(uploaded["public_id"])
    listed = cloudinary.api.resources(resource_type="raw", prefix=folder)
    assert [item["public_id"] for item in listed["resources"]] == [uploaded["public_id"]]
    assert fetch(uploaded["url"]).body == document

    deleted = cloudinary.api.delete_resources([uploaded["public_id"]], resource_type="raw")
    assert deleted["deleted"] == {uploaded["public_id"]: "deleted"}
    assert fetch(uploaded["url"]).status == 404


def test_video_upload__round_trips_with_its_format_apart_from_the_public_id(
    cloudinary_target: CloudinaryTarget,
) -> None:
    public_id = unique("clip")

    uploaded = cloudinary.uploader.upload(io.BytesIO(MP4_BYTES), resource_type="video", public_id=public_id)

    assert (uploaded["public_id"], uploaded["format"], uploaded["resource_type"]) == (
        public_id,
        "mp4",
        "video",
    )
    assert uploaded["url"].endswith(f"/video/upload/v{uploaded['version']}/{public_id}.mp4")
    delivered = fetch(uploaded["url"])
    assert (delivered.status, delivered.headers["Content-Type"], delivered.body) == (
        200,
        "video/mp4",
        MP4_BYTES,
    )
    listed = cloudinary.api.resources_by_ids([public_id], resource_type="video")
    assert [item["public_id"] for item in listed["resources"]] == [public_id]

    assert cloudinary.uploader.destroy(public_id, resource_type="video")["result"] == "ok"
    assert fetch(uploaded["url"]).status == 404


@pytest.mark.parametrize("delivery_type", ["private", "authenticated"])
def test_restricted_upload__plain_url_is_refused_but_private_download_url_serves_it(
    cloudinary_target: CloudinaryTarget, delivery_type: str
) -> None:
    image = png_bytes(3, 3, "blue")
    public_id = unique(delivery_type)

    uploaded = cloudinary.uploader.upload(image, public_id=public_id, type=delivery_type)

    assert uploaded["type"] == delivery_type
    assert fetch(uploaded["url"]).status in (401, 404)
    listed = cloudinary.api.resources(type=delivery_type, prefix=public_id)
    assert [item["public_id"] for item in listed["resources"]] == [public_id]

    download_url = cloudinary.utils.private_download_url(public_id, "png", type=delivery_type)
    downloaded = fetch(download_url)
    assert (downloaded.status, downloaded.body) == (200, image)

    assert cloudinary.uploader.destroy(public_id, type=delivery_type)["result"] == "ok"
    assert fetch(download_url).status == 404


def test_authenticated_delivery__signed_url_is_served_and_a_tampered_one_is_not(
    cloudinary_target: CloudinaryTarget,
) -> None:
    image = png_bytes(5, 4, "green")
    public_id = unique("signed")
    uploaded = cloudinary.uploader.upload(image, public_id=public_id, type="authenticated")

    signed_url, _ = cloudinary.utils.cloudinary_url(
        public_id, type="authenticated", sign_url=True, format="png", version=uploaded["version"]
    )
    assert "/s--" in signed_url
    assert fetch(signed_url).body == image

    resized_url, _ = cloudinary.utils.cloudinary_url(
        public_id, type="authenticated", sign_url=True, format="png", width=40, crop="scale"
    )
    assert fetch(resized_url).status == 200

    signature = signed_url.split("/s--", 1)[1].split("--", 1)[0]
    forged = signed_url.replace(f"s--{signature}--", f"s--{'A' * len(signature)}--")
    assert fetch(forged).status == 401
    other_asset = signed_url.replace(public_id, public_id + "x")
    assert fetch(other_asset).status == 401


def test_private_download_url__tampered_or_expired_is_refused(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    image = png_bytes()
    cloudinary.uploader.upload(image, public_id="report-card", type="private")
    good = cloudinary.utils.private_download_url("report-card", "png", type="private")
    assert fetch(good).status == 200

    scheme, netloc, path, query, fragment = urlsplit(good)
    params = dict(parse_qsl(query))
    params["public_id"] = "someone-elses"
    tampered = fetch(urlunsplit((scheme, netloc, path, urlencode(params), fragment)))
    assert tampered.status == 401
    assert b"Invalid Signature" in tampered.body

    expired_url = cloudinary.utils.private_download_url(
        "report-card", "png", type="private", expires_at=int(time.time()) - 10
    )
    expired = fetch(expired_url)
    assert expired.status == 401
    assert b"expired" in expired.body


# Authentication


def test_upload__bad_signature_is_rejected(cloudinary_target: CloudinaryTarget) -> None:
    with pytest.raises(
        cloudinary.exceptions.AuthorizationRequired, match=r"^Invalid Signature [0-9a-f]{40}\. "
    ):
        cloudinary.uploader.upload(png_bytes(), public_id=unique("forged"), api_secret="not-the-secret")


def test_upload__stale_timestamp_is_rejected(cloudinary_target: CloudinaryTarget) -> None:
    two_hours_ago = int(time.time()) - 2 * 3600

    with pytest.raises(cloudinary.exceptions.AuthorizationRequired) as raised:
        cloudinary.uploader.call_api(
            "upload", {"timestamp": str(two_hours_ago), "public_id": unique("stale")}, file=png_bytes()
        )

    assert str(raised.value).startswith("Stale request - reported time is ")
    assert str(raised.value).endswith("which is more than 1 hour ago")


def test_upload__sha256_signature_is_accepted(cloudinary_target: CloudinaryTarget) -> None:
    public_id = unique("sha256")
    uploaded = cloudinary.uploader.upload(png_bytes(), public_id=public_id, signature_algorithm="sha256")
    assert uploaded["public_id"] == public_id
    cloudinary.uploader.destroy(public_id, signature_algorithm="sha256")


def test_upload__sha256_only_account_rejects_sha1_signatures() -> None:
    with CloudinaryEmulator(allowed_signature_algorithms=["sha256"]) as emulator:
        config = emulator.sdk_config()
        with pytest.raises(cloudinary.exceptions.AuthorizationRequired, match="Invalid Signature"):
            cloudinary.uploader.upload(png_bytes(), **config)
        assert cloudinary.uploader.upload(png_bytes(), signature_algorithm="sha256", **config)["version"] > 0


def test_upload__unknown_api_key_is_rejected(cloudinary_emulator: CloudinaryEmulator) -> None:
    with pytest.raises(cloudinary.exceptions.AuthorizationRequired, match=r"^Unknown API key 999$"):
        cloudinary.uploader.upload(png_bytes(), api_key="999")


def test_admin__wrong_secret_or_key_is_rejected_with_401(cloudinary_emulator: CloudinaryEmulator) -> None:
    with pytest.raises(cloudinary.exceptions.AuthorizationRequired, match="api_secret mismatch"):
        cloudinary.api.ping(api_secret="wrong")
    with pytest.raises(cloudinary.exceptions.AuthorizationRequired, match="Unknown API key 999"):
        cloudinary.api.resources(api_key="999")
    assert cloudinary.api.ping()["status"] == "ok"


# Upload options


def test_upload__overwrite_false_keeps_the_existing_asset(cloudinary_emulator: CloudinaryEmulator) -> None:
    first = cloudinary.uploader.upload(png_bytes(color="red"), public_id="logo")
    kept = cloudinary.uploader.upload(png_bytes(color="blue"), public_id="logo", overwrite=False)
    replaced = cloudinary.uploader.upload(png_bytes(color="green"), public_id="logo")

    assert kept["existing"] is True
    assert kept["version"] == first["version"]
    assert replaced["version"] > first["version"]
    assert replaced["asset_id"] == first["asset_id"]
    assert cloudinary_emulator.resource_bytes("logo") == png_bytes(color="green")


def test_upload__random_and_unique_public_ids(cloudinary_emulator: CloudinaryEmulator) -> None:
    random_id = cloudinary.uploader.upload(png_bytes())["public_id"]
    exact_name = cloudinary.uploader.upload(
        png_bytes(), use_filename=True, unique_filename=False, filename="menu.png", folder="week1"
    )["public_id"]
    raw_random = cloudinary.uploader.upload(io.BytesIO(b"x"), resource_type="raw", filename="a.pdf")[
        "public_id"
    ]

    assert len(random_id) == 20
    assert "/" not in random_id
    assert exact_name == "week1/menu"
    assert raw_random.endswith(".pdf")


def test_upload__auto_resource_type_classifies_by_content(cloudinary_emulator: CloudinaryEmulator) -> None:
    image = cloudinary.uploader.upload(png_bytes(), resource_type="auto")
    raw = cloudinary.uploader.upload(io.BytesIO(b"plain text"), resource_type="auto", filename="n.txt")
    video = cloudinary.uploader.upload(io.BytesIO(MP4_BYTES), resource_type="auto")

    assert [image["resource_type"], raw["resource_type"], video["resource_type"]] == ["image", "raw", "video"]
    assert "/image/upload/" in image["url"]
    assert "/raw/upload/" in raw["url"]


def test_upload__non_image_bytes_as_image_are_rejected(cloudinary_emulator: CloudinaryEmulator) -> None:
    with pytest.raises(cloudinary.exceptions.BadRequest, match=r"^Invalid image file$"):
        cloudinary.uploader.upload(io.BytesIO(b"not a picture"))


def test_upload_large__chunks_are_assembled_into_one_asset(cloudinary_emulator: CloudinaryEmulator) -> None:
    payload = bytes(range(256)) * 1000  # 256,000 bytes: 3 chunks of 100,000 at most

    uploaded = cloudinary.uploader.upload_large(
        io.BytesIO(payload), chunk_size=100_000, public_id="brochure.bin", resource_type="raw"
    )

    assert uploaded["public_id"] == "brochure.bin"
    assert uploaded["bytes"] == len(payload)
    assert cloudinary_emulator.resource_bytes("brochure.bin", "raw") == payload
    assert cloudinary_emulator.calls[EndpointKind.UPLOAD] == 3
    assert fetch(uploaded["url"]).body == payload


def test_upload__file_over_the_free_plan_size_is_rejected(cloudinary_emulator: CloudinaryEmulator) -> None:
    too_big = 10 * MB + 1

    with pytest.raises(cloudinary.exceptions.BadRequest) as raised:
        cloudinary.uploader.upload(io.BytesIO(b"\0" * too_big), resource_type="raw", filename="big.bin")

    assert str(raised.value) == f"File size too large. Got {too_big}. Maximum is {10 * MB}."
    assert cloudinary_emulator.resources() == []


def test_upload__size_limits_are_per_resource_type_and_reported_by_usage(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.limits.video_max_size_bytes = 500

    with pytest.raises(cloudinary.exceptions.BadRequest, match=rf"Got {len(MP4_BYTES)}\. Maximum is 500\."):
        cloudinary.uploader.upload(io.BytesIO(MP4_BYTES), resource_type="video")
    cloudinary.uploader.upload(io.BytesIO(MP4_BYTES[:400]), resource_type="video")

    limits = cloudinary.api.usage()["media_limits"]
    assert limits["video_max_size_bytes"] == 500
    assert limits["image_max_size_bytes"] == limits["raw_max_size_bytes"] == 10 * MB


# Admin API


def test_admin__usage_has_the_real_shape(cloudinary_emulator: CloudinaryEmulator) -> None:
    cloudinary.uploader.upload(png_bytes(), public_id="a")
    usage = cloudinary.api.usage()

    for section in ("storage", "bandwidth", "transformations", "objects"):
        assert "usage" in usage[section]
    assert set(usage["credits"]) >= {"usage", "limit", "used_percent"}
    assert usage["storage"]["usage"] == len(png_bytes())
    assert usage["resources"] == 1


def test_admin__pagination_walks_1200_resources_with_next_cursor(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    for index in range(1200):
        cloudinary_emulator.seed_resource(f"bulk/{index:04}.txt", b"x", tags=["bulk"])
    cloudinary_emulator.seed_resource("elsewhere/other.txt", b"y")

    page_sizes: list[int] = []
    seen: list[str] = []
    cursor: str | None = None
    while True:
        options = {"next_cursor": cursor} if cursor else {}
        page = cloudinary.api.resources(resource_type="raw", prefix="bulk/", max_results=500, **options)
        page_sizes.append(len(page["resources"]))
        seen.extend(item["public_id"] for item in page["resources"])
        cursor = page.get("next_cursor")
        if cursor is None:
            break

    assert page_sizes == [500, 500, 200]
    assert seen == [f"bulk/{index:04}.txt" for index in reversed(range(1200))]  # newest first, as documented


def test_admin__listing_defaults_to_10_and_caps_max_results_at_500(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    for index in range(12):
        cloudinary_emulator.seed_resource(f"item-{index}.txt", b"x")

    first = cloudinary.api.resources(resource_type="raw")
    assert len(first["resources"]) == 10
    rest = cloudinary.api.resources(resource_type="raw", next_cursor=first["next_cursor"])
    assert len(rest["resources"]) == 2
    assert "next_cursor" not in rest
    oldest_first = cloudinary.api.resources(resource_type="raw", direction="asc", max_results=1)
    assert oldest_first["resources"][0]["public_id"] == "item-0.txt"
    with pytest.raises(cloudinary.exceptions.BadRequest, match="max_results"):
        cloudinary.api.resources(resource_type="raw", max_results=501)


def test_admin__resources_by_ids_returns_the_found_ones_and_refuses_more_than_100(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.seed_resource("kid-1", png_bytes(), resource_type="image")
    cloudinary_emulator.seed_resource("kid-2", png_bytes(), resource_type="image")

    found = cloudinary.api.resources_by_ids(["kid-1", "missing", "kid-2"])
    assert sorted(item["public_id"] for item in found["resources"]) == ["kid-1", "kid-2"]

    with pytest.raises(cloudinary.exceptions.BadRequest, match="at most 100"):
        cloudinary.api.resources_by_ids([f"id-{index}" for index in range(101)])


def test_admin__single_resource_details_and_404(cloudinary_emulator: CloudinaryEmulator) -> None:
    cloudinary_emulator.seed_resource(
        "staff/teacher", png_bytes(30, 20), resource_type="image", tags=["staff"]
    )

    details = cloudinary.api.resource("staff/teacher")
    assert (details["public_id"], details["format"], details["width"], details["height"]) == (
        "staff/teacher",
        "png",
        30,
        20,
    )
    assert details["tags"] == ["staff"]
    with pytest.raises(cloudinary.exceptions.NotFound, match="Resource not found - staff/nobody"):
        cloudinary.api.resource("staff/nobody")


def test_admin__delete_resources_by_ids_and_by_prefix(cloudinary_emulator: CloudinaryEmulator) -> None:
    for name in ("old/1.txt", "old/2.txt", "keep/3.txt"):
        cloudinary_emulator.seed_resource(name, b"x")

    by_ids = cloudinary.api.delete_resources(["old/1.txt", "nope.txt"], resource_type="raw")
    assert by_ids["deleted"] == {"old/1.txt": "deleted", "nope.txt": "not_found"}
    assert by_ids["deleted_counts"] == {"old/1.txt": {"original": 1, "derived": 0}}
    assert by_ids["partial"] is False

    by_prefix = cloudinary.api.delete_resources_by_prefix("old/", resource_type="raw")
    assert by_prefix["deleted"] == {"old/2.txt": "deleted"}
    assert [resource.public_id for resource in cloudinary_emulator.resources()] == ["keep/3.txt"]

    with pytest.raises(cloudinary.exceptions.BadRequest, match="at most 100"):
        cloudinary.api.delete_resources([f"id-{index}" for index in range(101)])


def test_admin__rate_limit_counts_down_in_headers_then_answers_420(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.admin_rate_limit = 3

    remaining = [cloudinary.api.ping().rate_limit_remaining for _ in range(3)]
    assert remaining == [2, 1, 0]
    with pytest.raises(
        cloudinary.exceptions.RateLimited,
        match=r"^Error 420 - Rate Limit Exceeded\. Limit of 3 api operations reached\. Try again on ",
    ):
        cloudinary.api.ping()  # the fourth call this hour

    # The same answer seen on the wire: status 420 and the X-FeatureRateLimit-* headers.
    request = urllib.request.Request(  # noqa: S310 - loopback http
        f"{cloudinary_emulator.base_url}/v1_1/{cloudinary_emulator.cloud_name}/ping"
    )
    credentials = f"{cloudinary_emulator.api_key}:{cloudinary_emulator.api_secret}"
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as raised:
        _opener.open(request, timeout=10)
    assert raised.value.code == 420
    assert raised.value.headers["X-FeatureRateLimit-Limit"] == "3"
    assert raised.value.headers["X-FeatureRateLimit-Remaining"] == "0"
    assert raised.value.headers["X-FeatureRateLimit-Reset"].endswith(" GMT")
    # Uploads are not Admin API calls and stay unlimited.
    assert cloudinary.uploader.upload(png_bytes())["version"] > 0


# Delivery


def test_delivery__transformations_are_ignored_and_head_reports_the_length(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    image = png_bytes(50, 50)
    cloudinary.uploader.upload(image, public_id="gallery/sunflower")

    thumbnail_url, _ = cloudinary.utils.cloudinary_url(
        "gallery/sunflower", width=20, height=20, crop="fill", format="jpg"
    )
    assert "/c_fill,h_20,w_20/" in thumbnail_url
    assert fetch(thumbnail_url).body == image

    head = fetch(thumbnail_url, method="HEAD")
    assert (head.status, head.headers["Content-Length"], head.body) == (200, str(len(image)), b"")
    missing = fetch(thumbnail_url.replace("sunflower", "tulip"), method="HEAD")
    assert missing.status == 404
    assert missing.headers["X-Cld-Error"] == "Resource not found"


# Faults


@pytest.mark.parametrize(
    ("kind", "exception", "message"),
    [
        (FaultKind.HTTP_500, cloudinary.exceptions.GeneralError, "General Error"),
        (FaultKind.HTTP_503, cloudinary.exceptions.GeneralError, "Service Unavailable"),
        (FaultKind.HTTP_420, cloudinary.exceptions.RateLimited, "Rate Limit Exceeded"),
        (FaultKind.HTTP_429, cloudinary.exceptions.RateLimited, "Too Many Requests"),
        (FaultKind.HTTP_502, cloudinary.exceptions.Error, r"Error parsing server response \(502\)"),
    ],
)
def test_fault__http_error_reaches_the_sdk_as_its_exception(
    cloudinary_emulator: CloudinaryEmulator, kind: FaultKind, exception: type[Exception], message: str
) -> None:
    cloudinary_emulator.inject_fault(kind, endpoints=["upload"])

    with pytest.raises(exception, match=message):
        cloudinary.uploader.upload(png_bytes(), public_id="flaky")

    assert cloudinary_emulator.resources() == []
    assert cloudinary.uploader.upload(png_bytes(), public_id="flaky")["public_id"] == "flaky"


def test_fault__connection_reset_on_upload_raises_an_sdk_error(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.inject_fault(FaultKind.CONNECTION_RESET, endpoints=[EndpointKind.UPLOAD])

    with pytest.raises(cloudinary.exceptions.Error, match=r"Unexpected error|Socket error"):
        cloudinary.uploader.upload(png_bytes())

    assert cloudinary_emulator.calls[EndpointKind.UPLOAD] == 1


def test_fault__connection_reset_on_admin_get_is_retried_by_urllib3(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    # urllib3 retries idempotent requests up to 3 times: two resets are invisible to the caller.
    cloudinary_emulator.inject_fault(FaultKind.CONNECTION_RESET, endpoints=["admin"], times=2)

    assert cloudinary.api.ping()["status"] == "ok"
    assert cloudinary_emulator.calls[EndpointKind.ADMIN] == 3

    cloudinary_emulator.inject_fault(FaultKind.CONNECTION_RESET, endpoints=["admin"], times=4)
    with pytest.raises(cloudinary.exceptions.GeneralError, match="Unexpected error"):
        cloudinary.api.ping()


def test_fault__slow_response_trips_the_sdk_timeout(cloudinary_emulator: CloudinaryEmulator) -> None:
    cloudinary_emulator.inject_fault(FaultKind.SLOW, endpoints=["upload"], delay_seconds=1.0)

    started = time.monotonic()
    with pytest.raises(cloudinary.exceptions.Error, match="Read timed out"):
        cloudinary.uploader.upload(png_bytes(), timeout=0.2)
    assert time.monotonic() - started < 0.9

    # Without a timeout the slow call completes.
    cloudinary_emulator.inject_fault(FaultKind.SLOW, endpoints=["upload"], delay_seconds=0.3)
    assert cloudinary.uploader.upload(png_bytes(), public_id="patient")["public_id"] == "patient"


def test_fault__truncated_body_raises_instead_of_returning_half_a_response(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary_emulator.inject_fault(FaultKind.TRUNCATED_BODY, endpoints=["upload"])

    with pytest.raises(cloudinary.exceptions.Error, match=r"IncompleteRead|Unexpected error"):
        cloudinary.uploader.upload(png_bytes())


def test_fault__truncated_delivery_is_seen_by_a_plain_http_client(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    uploaded = cloudinary.uploader.upload(png_bytes(40, 40), public_id="cut")
    cloudinary_emulator.inject_fault(FaultKind.TRUNCATED_BODY, endpoints=["delivery"])

    with pytest.raises(Exception, match=r"IncompleteRead|incomplete"):
        fetch(uploaded["url"])
    assert fetch(uploaded["url"]).status == 200


def test_fault__rate_is_seeded_and_repeatable(cloudinary_emulator: CloudinaryEmulator) -> None:
    uploaded = cloudinary.uploader.upload(png_bytes(), public_id="dice")

    def failure_pattern() -> list[int]:
        cloudinary_emulator.clear_faults()
        cloudinary_emulator.inject_fault(FaultKind.HTTP_503, endpoints=["delivery"], rate=0.5, seed=42)
        return [fetch(uploaded["url"]).status for _ in range(20)]

    first, second = failure_pattern(), failure_pattern()
    assert first == second
    assert set(first) == {200, 503}


def test_fault__every_nth_call_only_on_the_chosen_endpoint(cloudinary_emulator: CloudinaryEmulator) -> None:
    uploaded = cloudinary.uploader.upload(png_bytes(), public_id="third")
    cloudinary_emulator.inject_fault(FaultKind.HTTP_500, endpoints=["delivery"], every=3)

    statuses = [fetch(uploaded["url"]).status for _ in range(6)]

    assert statuses == [200, 200, 500, 200, 200, 500]
    assert cloudinary.api.ping()["status"] == "ok"
    assert cloudinary.uploader.upload(png_bytes())["version"] > 0


# Inspection


def test_inspection__reset_forgets_assets_faults_calls_and_limits(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    cloudinary.uploader.upload(png_bytes(), public_id="temp")
    cloudinary_emulator.inject_fault(FaultKind.HTTP_500, times=5)
    cloudinary_emulator.admin_rate_limit = 1
    cloudinary_emulator.limits.image_max_size_bytes = 1

    cloudinary_emulator.reset()

    assert cloudinary_emulator.resources() == []
    assert cloudinary_emulator.calls == {}
    assert cloudinary_emulator.admin_rate_limit == 500
    assert cloudinary_emulator.limits.image_max_size_bytes == 10 * MB
    assert cloudinary.api.ping()["status"] == "ok"


# Found by running the SDK's own test suite against the emulator (issue 16)


def test_responses__carry_an_x_request_id_the_sdk_reports(cloudinary_target: CloudinaryTarget) -> None:
    uploaded = cloudinary.uploader.upload(png_bytes(), folder=unique("request-id"))
    listed = cloudinary.api.resources(type="upload", prefix=uploaded["public_id"])
    delivered = fetch(uploaded["secure_url"])

    assert uploaded["request_id"]
    assert listed.request_id
    assert listed.request_id != uploaded["request_id"]
    assert delivered.headers["X-Request-Id"]


def test_upload__data_uri_in_the_multipart_file_field_is_decoded(cloudinary_target: CloudinaryTarget) -> None:
    image = png_bytes(9, 5, "teal")
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()

    uploaded = cloudinary.uploader.upload(data_uri, folder=unique("data-uri"))

    assert (uploaded["format"], uploaded["width"], uploaded["height"]) == ("png", 9, 5)
    assert uploaded["bytes"] == len(image)
    assert fetch(uploaded["secure_url"]).body == image


def test_upload_api__unsupported_actions_say_so_not_must_supply_api_key(
    cloudinary_emulator: CloudinaryEmulator,
) -> None:
    public_id = cloudinary.uploader.upload(png_bytes(), folder=unique("unsupported"))["public_id"]
    calls = {
        "rename": lambda: cloudinary.uploader.rename(public_id, public_id + "-renamed"),
        "explicit": lambda: cloudinary.uploader.explicit(public_id, type="upload"),
        "tags": lambda: cloudinary.uploader.add_tag("kidoo", [public_id]),
    }
    for action, call in calls.items():
        with pytest.raises(cloudinary.exceptions.Error) as raised:
            call()
        assert not isinstance(raised.value, cloudinary.exceptions.AuthorizationRequired), action
        assert f"The Upload API action '{action}' is not supported by the emulator" in str(raised.value)
        assert "Must supply api_key" not in str(raised.value)
    # The Admin API, which shares the /v1_1/<cloud>/ prefix, is routed as before.
    assert cloudinary.api.resources(type="upload", prefix=public_id)["resources"][0]["public_id"] == public_id
