"""The API never answers 500 and always answers JSON: hostile input, wrong methods, big and
chunked bodies, and a property-based fuzz over every endpoint, method, query and body shape.

Everything goes through the real WSGI application (django.test.Client builds WSGI environs and
runs the full middleware stack); tests/test_local_run.py sends a chunked body through gunicorn.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.models import Announcement, Enquiry, GalleryAlbum, GalleryImage, Teacher
from api.models import Testimonial as ParentTestimonial
from tests.test_api import make_event, make_program, valid_enquiry

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def assert_json(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return json.loads(response.content)


def post_raw(client: Client, body: bytes | str, content_type: str = "application/json", **extra: Any) -> Any:
    return client.generic("POST", "/api/enquiries/", body, content_type=content_type, **extra)


# --- bad input: 400 with field messages, nothing stored -----------------------------------------------


def test_enquiry__5000_digit_integer_is_a_400(client: Client) -> None:
    body = json.dumps(valid_enquiry()).replace('"child_age_years": 3', '"child_age_years": ' + "9" * 5000)
    errors = assert_json(post_raw(client, body), 400)["errors"]
    assert errors == {"__all__": ["The body is not valid JSON: a number has too many digits."]}
    # As a form field, the same number is an invalid age, not a crash.
    form = {**valid_enquiry(), "child_age_years": "9" * 5000}
    response = client.post(
        "/api/enquiries/", urllib.parse.urlencode(form), content_type="application/x-www-form-urlencoded"
    )
    assert "child_age_years" in assert_json(response, 400)["errors"]
    assert not Enquiry.objects.exists()


def test_enquiry__json_nested_5000_deep_is_a_400(client: Client) -> None:
    body = '{"message": ' + "[" * 5000 + "]" * 5000 + "}"
    errors = assert_json(post_raw(client, body), 400)["errors"]
    assert errors == {"__all__": ["The body is not valid JSON: it is nested too deeply."]}


def test_enquiry__lone_surrogate_is_a_400_naming_the_field(client: Client) -> None:
    body = json.dumps(valid_enquiry()).replace("Alex Example", "Alex \\ud800 Example")
    errors = assert_json(post_raw(client, body), 400)["errors"]
    assert errors == {"parent_name": ["Not valid text (it holds a lone surrogate)."]}
    assert not Enquiry.objects.exists()


def test_enquiry__broken_multipart_is_a_400(client: Client) -> None:
    response = post_raw(client, b"--x\r\nnot a part", content_type="multipart/form-data")
    assert assert_json(response, 400)["errors"]["__all__"]


def test_enquiry__too_many_form_fields_is_a_json_400(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{number}=x" for number in range(50))
    response = post_raw(client, body, content_type="application/x-www-form-urlencoded")
    assert assert_json(response, 400) == {"error": "The request body could not be read."}


# --- methods: a JSON 405, without a CSRF token ---------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_read_only_endpoints__writes_get_a_json_405_without_a_csrf_token(method: str) -> None:
    browser = Client(enforce_csrf_checks=True)
    make_program("preschool")
    for path in ("/api/programs/", "/api/programs/preschool/", "/api/testimonials/"):
        response = browser.generic(method, path, b"{}", content_type="application/json")
        assert assert_json(response, 405) == {"error": f"Method {method} not allowed."}
        assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_unknown_api_urls__any_method_gets_a_json_404(method: str) -> None:
    browser = Client(enforce_csrf_checks=True)
    response = browser.generic(method, "/api/nope/deeper/", b"x", content_type="text/plain")
    assert assert_json(response, 404) == {"error": "Not found."}


def test_enquiry__other_methods_get_a_json_405() -> None:
    response = Client(enforce_csrf_checks=True).get("/api/enquiries/")
    assert assert_json(response, 405)["error"] == "Method GET not allowed."
    assert response["Allow"] == "POST"


# --- size and chunked bodies --------------------------------------------------------------------------


def test_enquiry__body_over_data_upload_max_memory_size_is_a_json_413(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_raw(client, json.dumps(valid_enquiry(message="x" * 2000)))
    assert assert_json(response, 413) == {"error": "The request body is too large."}


def chunked(client: Client, body: bytes, *, terminated: bool = True) -> Any:
    """A POST as a WSGI server hands on a chunked one: no Content-Length, the body de-chunked."""
    extra: dict[str, Any] = {
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_LENGTH": "",
        "wsgi.input": io.BytesIO(body),
    }
    if terminated:
        extra["wsgi.input_terminated"] = True
    return post_raw(client, body, **extra)


def test_enquiry__chunked_body_is_read(client: Client) -> None:
    response = chunked(client, json.dumps(valid_enquiry()).encode())
    public_id = assert_json(response, 201)["public_id"]
    assert Enquiry.objects.get(public_id=public_id).parent_name == "Alex Example"


def test_enquiry__chunked_body_over_the_limit_is_a_json_413(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = chunked(client, json.dumps(valid_enquiry(message="x" * 5000)).encode())
    assert "too large" in assert_json(response, 413)["error"]
    assert not Enquiry.objects.exists()


def test_enquiry__chunked_body_without_a_terminated_stream_is_left_unread(client: Client) -> None:
    # A server that does not promise the stream ends (runserver) would block the read: not read.
    response = chunked(client, json.dumps(valid_enquiry()).encode(), terminated=False)
    assert assert_json(response, 400)["errors"]["__all__"]


# --- what other layers refuse is JSON too ---------------------------------------------------------------


def test_api__disallowed_host_is_a_json_400(client: Client) -> None:
    response = client.get("/api/programs/", HTTP_HOST="attacker.example")
    assert assert_json(response, 400) == {"error": "Bad request."}


def test_non_api_pages__keep_their_html_errors(client: Client) -> None:
    response = client.get("/admin/nope/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


# --- the fuzz -------------------------------------------------------------------------------------------

SLUG_PATHS = [
    "/api/programs/",
    "/api/programs/preschool/",
    "/api/teachers/",
    "/api/teachers/amara-okafor/",
    "/api/gallery/",
    "/api/gallery/sports-day/",
    "/api/events/",
    "/api/announcements/",
    "/api/testimonials/",
    "/api/enquiries/",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "multipart/form-data",
    "text/plain",
    "application/json; charset=no-such-codec",
]
FIELDS = ["parent_name", "phone", "email", "child_name", "child_age_years", "program", "message", "consent"]

# Text including lone surrogates and NULs, which UTF-8 and PostgreSQL refuse.
hostile_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\ud800", "\x00", "9" * 5000, "-1", "0", "1e999", "NaN", "preschool", "a" * 300]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["enquiry", "json", "deep", "digits", "form", "bytes", "empty"]))
    if kind == "enquiry":
        fields = draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
        text = json.dumps({**valid_enquiry(), **fields})
    elif kind == "json":
        text = json.dumps(draw(json_values))
    elif kind == "deep":
        depth = draw(st.integers(1, 6000))
        text = '{"message": ' + "[" * depth + "]" * depth + "}"
    elif kind == "digits":
        text = '{"child_age_years": ' + "7" * draw(st.integers(1, 6000)) + "}"
    elif kind == "form":
        pairs = draw(st.lists(st.tuples(st.sampled_from(FIELDS) | hostile_text, hostile_text), max_size=6))
        text = urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    elif kind == "bytes":
        return draw(st.binary(max_size=300))
    else:
        return b""
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def paths(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(SLUG_PATHS))
    segments = draw(
        st.lists(
            hostile_text
            | st.sampled_from(["events", "announcements", str(uuid.uuid4()), "9" * 30, "9" * 5000]),
            min_size=1,
            max_size=3,
        )
    )
    quoted = "/".join(urllib.parse.quote(s, safe="", errors="surrogatepass") for s in segments)
    return f"/api/{quoted}" + draw(st.sampled_from(["/", "/", ""]))


queries = st.lists(
    st.tuples(st.sampled_from(["page", "page_size", "upcoming"]) | hostile_text, hostile_text), max_size=4
).map(lambda pairs: urllib.parse.urlencode(pairs, encoding="utf-8", errors="surrogatepass"))


@pytest.fixture
def site_content() -> None:
    program = make_program("preschool")
    teacher = Teacher.objects.create(name="Amara Okafor", slug="amara-okafor", photo="teachers/amara.jpg")
    teacher.programs.add(program)
    album = GalleryAlbum.objects.create(title="Sports day", slug="sports-day")
    GalleryImage.objects.create(album=album, image="gallery/a.jpg")
    make_event("open-day", timedelta(days=3), program=program)
    Announcement.objects.create(title="News", body=".", published_at=timezone.now() - timedelta(days=1))
    ParentTestimonial.objects.create(parent_name="A Parent", quote="Lovely.", rating=5, is_approved=True)


@hypothesis_settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    method=st.sampled_from(METHODS),
    path=paths(),
    query=queries,
    body=bodies(),
    content_type=st.sampled_from(CONTENT_TYPES),
    chunked_body=st.booleans(),
)
def test_api_fuzz__never_a_5xx_always_json(
    site_content: None, method: str, path: str, query: str, body: bytes, content_type: str, chunked_body: bool
) -> None:
    client = Client(enforce_csrf_checks=True)
    extra: dict[str, Any] = {"QUERY_STRING": query}
    if chunked_body:
        extra.update(
            {
                "HTTP_TRANSFER_ENCODING": "chunked",
                "CONTENT_LENGTH": "",
                "wsgi.input": io.BytesIO(body),
                "wsgi.input_terminated": True,
            }
        )
    response = client.generic(method, path, body, content_type=content_type, **extra)

    assert response.status_code < 500, (response.status_code, response.content[:500])
    if 300 <= response.status_code < 400:
        # APPEND_SLASH sends /api/x to /api/x/, which answers in JSON itself.
        assert urllib.parse.urlsplit(response["Location"]).path.endswith("/"), response["Location"]
        assert response.content == b""
        return
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response.content[:300],
    )
    if method != "HEAD":
        json.loads(response.content)
