"""The public JSON API: read-only lists and details, and the one write, a parent's enquiry.

Plain Django views: the API is small, and its whole surface (what is public, what is paged, what
a browser on the frontend's origin may post) is easier to audit written out than configured.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.core.paginator import EmptyPage, Paginator
from django.db.models import Model, Prefetch, QuerySet
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from api import serializers
from api.forms import EnquiryForm
from api.models import Announcement, Enquiry, Event, GalleryAlbum, Program, Teacher, Testimonial

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# An enquiry is a few short fields; anything far larger is abuse or a mistake, refused unread.
MAX_ENQUIRY_BODY_BYTES = 16 * 1024

ModelT = TypeVar("ModelT", bound=Model)
View = Callable[..., JsonResponse]


def json_error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


# Any method: an unknown URL is a 404 whatever is sent to it, and needs no CSRF token to say so.
@csrf_exempt
def json_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any unknown URL under /api/: the frontend reads JSON, never Django's HTML 404 page."""
    return json_error(404, "Not found.")


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def allow_methods(*methods: str) -> Callable[[View], View]:
    """Answer other methods with a JSON 405 (and an Allow header), like require_http_methods."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                response = json_error(405, f"Method {request.method} not allowed.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        if set(methods) <= SAFE_METHODS:
            # A read-only view changes nothing whatever is sent: a POST is told 405 without first
            # being asked for a CSRF token (a 403 HTML page the frontend cannot read).
            return csrf_exempt(wrapper)
        return wrapper

    return decorator


read_only = allow_methods("GET", "HEAD")


class BadQueryParameter(ValueError):
    pass


def _positive_int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise BadQueryParameter(f"{name} must be a positive whole number.") from None
    if number < 1:
        raise BadQueryParameter(f"{name} must be a positive whole number.")
    return number


def _page_url(request: HttpRequest, page_number: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page_number)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def paginated_response(
    request: HttpRequest,
    queryset: QuerySet[ModelT],
    to_dict: Callable[[ModelT, HttpRequest], serializers.JsonDict],
) -> JsonResponse:
    """One page of ``queryset`` as ``{"count", "next", "previous", "results"}``.

    ``?page_size=`` above MAX_PAGE_SIZE is capped rather than refused, so a frontend asking for
    "everything" still gets a working (paged) answer.
    """
    try:
        page_number = _positive_int_param(request, "page", 1)
        page_size = min(_positive_int_param(request, "page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    except BadQueryParameter as error:
        return json_error(400, str(error))
    paginator = Paginator(queryset, page_size)
    try:
        page = paginator.page(page_number)
    except EmptyPage:
        return json_error(404, f"Page {page_number} does not exist.", count=paginator.count)
    return JsonResponse(
        {
            "count": paginator.count,
            "next": _page_url(request, page.next_page_number()) if page.has_next() else None,
            "previous": _page_url(request, page.previous_page_number()) if page.has_previous() else None,
            "results": [to_dict(item, request) for item in page.object_list],
        }
    )


def _detail_response(
    request: HttpRequest,
    queryset: QuerySet[ModelT],
    to_dict: Callable[[ModelT, HttpRequest], serializers.JsonDict],
    **lookup: Any,
) -> JsonResponse:
    instance = queryset.filter(**lookup).first()
    if instance is None:
        return json_not_found(request)
    return JsonResponse(to_dict(instance, request))


# What the public may see, with what each serializer reads loaded up front, so a page of results
# costs the same few queries however many rows it holds.


def public_programs() -> QuerySet[Program]:
    return Program.objects.filter(is_active=True)


def public_teachers() -> QuerySet[Teacher]:
    return Teacher.objects.filter(is_active=True).prefetch_related(
        Prefetch("programs", queryset=Program.objects.filter(is_active=True))
    )


def public_albums() -> QuerySet[GalleryAlbum]:
    return GalleryAlbum.objects.filter(is_published=True)


def public_events() -> QuerySet[Event]:
    return Event.objects.filter(is_published=True).select_related("program")


def public_announcements() -> QuerySet[Announcement]:
    # Scheduled announcements appear when their time comes.
    return Announcement.objects.filter(published_at__lte=timezone.now())


def public_testimonials() -> QuerySet[Testimonial]:
    return Testimonial.objects.filter(is_approved=True)


@read_only
def program_list(request: HttpRequest) -> JsonResponse:
    return paginated_response(request, public_programs(), serializers.program_to_dict)


@read_only
def program_detail(request: HttpRequest, slug: str) -> JsonResponse:
    return _detail_response(request, public_programs(), serializers.program_to_dict, slug=slug)


@read_only
def teacher_list(request: HttpRequest) -> JsonResponse:
    return paginated_response(request, public_teachers(), serializers.teacher_to_dict)


@read_only
def teacher_detail(request: HttpRequest, slug: str) -> JsonResponse:
    return _detail_response(request, public_teachers(), serializers.teacher_to_dict, slug=slug)


@read_only
def album_list(request: HttpRequest) -> JsonResponse:
    return paginated_response(request, public_albums(), serializers.gallery_album_to_dict)


@read_only
def album_detail(request: HttpRequest, slug: str) -> JsonResponse:
    return _detail_response(
        request,
        public_albums().prefetch_related("images"),
        functools.partial(serializers.gallery_album_to_dict, with_images=True),
        slug=slug,
    )


@read_only
def event_list(request: HttpRequest) -> JsonResponse:
    events = public_events()
    if request.GET.get("upcoming") in {"1", "true", "yes"}:
        # Upcoming includes what is on right now: a parent checking today's fair should find it.
        events = events.filter(ends_at__gte=timezone.now())
    return paginated_response(request, events, serializers.event_to_dict)


@read_only
def event_detail(request: HttpRequest, public_id: uuid.UUID) -> JsonResponse:
    return _detail_response(request, public_events(), serializers.event_to_dict, public_id=public_id)


@read_only
def announcement_list(request: HttpRequest) -> JsonResponse:
    return paginated_response(request, public_announcements(), serializers.announcement_to_dict)


@read_only
def announcement_detail(request: HttpRequest, announcement_id: int) -> JsonResponse:
    return _detail_response(
        request, public_announcements(), serializers.announcement_to_dict, pk=announcement_id
    )


@read_only
def testimonial_list(request: HttpRequest) -> JsonResponse:
    return paginated_response(request, public_testimonials(), serializers.testimonial_to_dict)


class UnreadableBody(ValueError):
    pass


def _enquiry_data(request: HttpRequest) -> Mapping[str, Any]:
    """The submitted fields, from a JSON object or a form-encoded body."""
    content_type = request.content_type or ""
    if content_type == "application/json":
        try:
            payload = json.loads(request.body or b"null")
        except RecursionError:
            raise UnreadableBody("The body is not valid JSON: it is nested too deeply.") from None
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an over-long number
            detail = ": a number has too many digits" if "digits" in str(error) else ""
            raise UnreadableBody(f"The body is not valid JSON{detail}.") from None
        if not isinstance(payload, dict):
            raise UnreadableBody("The body must be a JSON object of enquiry fields.")
        return payload
    if content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        try:
            return request.POST
        except MultiPartParserError:
            raise UnreadableBody("The multipart body could not be parsed.") from None
    raise UnreadableBody("Send the enquiry as application/json or application/x-www-form-urlencoded.")


def _not_text(data: Mapping[str, Any]) -> list[str]:
    """The fields whose value holds code points that are not text (a lone surrogate such as
    \\ud800, which JSON can escape but UTF-8, and so the database, cannot hold)."""
    invalid = []
    for name, value in data.items():
        try:
            name.encode()
            if isinstance(value, str):
                value.encode()
        except UnicodeEncodeError:
            invalid.append(name.encode(errors="replace").decode())
    return sorted(invalid)


# Cross-origin by design (a static frontend on another host posts here, allowed by CORS via
# FRONTEND_ORIGINS), and it carries no session: a CSRF token would protect nothing.
@csrf_exempt
@allow_methods("POST")
def enquiry_create(request: HttpRequest) -> JsonResponse:
    try:
        declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared_length = 0
    if declared_length > MAX_ENQUIRY_BODY_BYTES or len(request.body) > MAX_ENQUIRY_BODY_BYTES:
        return json_error(413, f"The enquiry is too large (at most {MAX_ENQUIRY_BODY_BYTES} bytes).")
    try:
        data = _enquiry_data(request)
    except UnreadableBody as error:
        return JsonResponse({"errors": {"__all__": [str(error)]}}, status=400)
    not_text = _not_text(data)
    if not_text:
        return JsonResponse(
            {"errors": {name: ["Not valid text (it holds a lone surrogate)."] for name in not_text}},
            status=400,
        )
    nested_fields = sorted(name for name, value in data.items() if isinstance(value, (list, dict)))
    if nested_fields:
        return JsonResponse(
            {"errors": {name: ["Expected a single value, not a list or object."] for name in nested_fields}},
            status=400,
        )
    form = EnquiryForm(data=data)
    if not form.is_valid():
        errors = {field: [str(message) for message in messages] for field, messages in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    enquiry: Enquiry = form.save()
    # Only the reference: echoing names or phone numbers back would put them in logs and caches.
    return JsonResponse({"public_id": str(enquiry.public_id)}, status=201)
