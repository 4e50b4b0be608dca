"""What a stored media value refers to: the one parser behind the API's URL helper and normalize_media_urls.

Pure (no I/O, no models): ``parse_media_value(value, context)`` classifies one value stored in a
file field and proposes the *canonical* value, the one the field's storage resolves correctly.
The API's read-time helper uses the proposal to build URLs, ``normalize_media_urls`` writes it back;
both read it from here, so they never disagree.

API
---
- ``MediaContext``: what the field's storage is (``StorageKind``), MEDIA_URL, the name prefix the
  storage adds by itself (django-cloudinary-storage: MEDIA_URL without its leading slash,
  ``media/``), the Cloudinary cloud name and the hosts its delivery URLs use, the resource type.
  ``media_context_for(storage)`` builds it from a Django storage; ``cloudinary_field_context(...)``
  for the SDK's ``CloudinaryField``.
- ``parse_media_value(value, context) -> MediaValue``: ``category`` (``MediaCategory``),
  ``canonical_name`` (set for CANONICAL and FIXABLE: the value to store), ``external_url`` (set for
  EXTERNAL: the cleaned URL, which a helper may serve as is), ``reason`` (one line for reports).
  It never raises, and canonical values are fixed points: ``parse(canonical_name)`` is CANONICAL
  with the same name. BROKEN is not decided here: it needs an existence check (ops.media.remote).
- ``candidate_names(parsed, context)``: every storage name a value may refer to, in order of
  preference (``canonical_name`` first, which is what the URL helper serves; under FileSystemStorage
  also the name without MEDIA_URL's folder; for UNKNOWN values their ``guesses``). Each is canonical.
  normalize_media_urls writes the first whose file exists, and nothing when none does.
- ``lookup_public_ids(name, context)`` / ``remote_keys(name, context)``: the Cloudinary public_ids
  (with resource and delivery type) a stored name is delivered from: what an existence check asks.

Shapes recognised (django-cloudinary-storage context, MEDIA_URL ``/media/``, cloud ``demo``)
--------------------------------------------------------------------------------------------
==============================================================  ==========  =====================
stored value                                                    category    canonical / url
==============================================================  ==========  =====================
``media/gallery/x`` or ``gallery/x.jpg`` (a storage name)       CANONICAL   unchanged
``''``, ``'  '``, ``None``                                      EMPTY
``https://res.cloudinary.com/demo/image/upload/v3/media/g/x.jpg``  FIXABLE  ``media/g/x``
  (also ``http:``, protocol-relative ``//res...``, with a query or fragment, transformations,
  a signature, ``res-2.cloudinary.com``, ``demo-res.cloudinary.com``, the configured cname)
``/media/https://res...``, ``media/https:/res...`` (collapsed),  FIXABLE    the inner URL's id
  ``/media/https%3A//res...`` (percent-encoded), a URL inside a URL's path (``.../upload/v1/media/
  https://res...``, any depth): the innermost URL is the file
``media/media/g/x`` (doubled prefix), ``/media/g/x`` (MEDIA_URL glued in front)  FIXABLE  ``media/g/x``
``https://res.cloudinary.com/other/...``, ``https://example.org/x.jpg``, this account's URL of
  another resource type or delivery type, or outside the storage's prefix       EXTERNAL   the URL
``data:...``, ``ftp://...``, ``../x``, ``/srv/elsewhere/x.jpg``, this account's URL in an
  unsupported form                                                               UNKNOWN
``C:\\fakepath\\photo.jpg``, ``media/C:/fakepath/photo.jpg`` (a path on the uploader's
  computer)                                     UNKNOWN, ``guesses`` ``media/photo.jpg``
==============================================================  ==========  =====================

Images and videos: django-cloudinary-storage stores their public_ids without extension, so one
taken from a URL drops it; raw public_ids keep theirs. Under FileSystemStorage (no name prefix)
``/media/g/x.jpg`` becomes ``g/x.jpg``, ``media/media/g/x.jpg`` becomes ``media/g/x.jpg`` (one
doubled layer: ``media/`` may be a real folder there) and every URL is EXTERNAL. For a
``CloudinaryField`` the canonical value is the field's own ``image/upload/v<version>/<id>.<format>``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit

from django.utils.functional import LazyObject, empty

__all__ = [
    "MediaCategory",
    "MediaContext",
    "MediaValue",
    "StorageKind",
    "candidate_names",
    "cloudinary_field_context",
    "lookup_public_ids",
    "media_context_for",
    "parse_media_value",
    "remote_keys",
]


class MediaCategory(enum.Enum):
    EMPTY = "empty"
    CANONICAL = "canonical"
    FIXABLE = "fixable"
    EXTERNAL = "external"
    UNKNOWN = "unknown"


class StorageKind(enum.Enum):
    FILESYSTEM = "filesystem"
    # django-cloudinary-storage's MediaCloudinaryStorage and its raw/video subclasses.
    CLOUDINARY_STORAGE = "cloudinary_storage"
    # The cloudinary SDK's own model field (values like ``image/upload/v1/id.jpg``).
    CLOUDINARY_FIELD = "cloudinary_field"
    # Anything else (S3, ...): names are taken as they are, URLs are external.
    OTHER = "other"


RESOURCE_TYPES = ("image", "raw", "video")
CLOUDINARY_FIELD_TYPES = ("upload", "private", "authenticated")
SHARED_CDN_HOST = re.compile(r"^res(?:-\d+)?\.cloudinary\.com$")


@dataclass(frozen=True)
class MediaContext:
    """What a field's storage makes of a stored value (see ``media_context_for``)."""

    kind: StorageKind
    media_url: str = "/media/"
    # What the storage prepends to every name by itself (django-cloudinary-storage: ``media/``).
    name_prefix: str = ""
    cloud_name: str | None = None
    resource_type: str = "image"
    delivery_type: str = "upload"
    # Delivery hosts besides Cloudinary's own: a cname, a private CDN, the test emulator's host:port.
    delivery_hosts: frozenset[str] = field(default_factory=frozenset)
    # FileSystemStorage's location: an absolute path under it is that storage's name.
    media_root: str | None = None

    # Cached: a scan asks for these once per stored value, a million times over.
    @cached_property
    def media_path(self) -> str:
        """MEDIA_URL's path without slashes (``media``): stored values only ever carry its path."""
        return urlsplit(self.media_url).path.strip("/")

    @cached_property
    def storage_prefix(self) -> str:
        """What names of this storage start with: its own prefix, else MEDIA_URL's path and a slash."""
        return self.name_prefix or (f"{self.media_path}/" if self.media_path else "")


@dataclass(frozen=True)
class MediaValue:
    category: MediaCategory
    canonical_name: str | None = None
    external_url: str | None = None
    reason: str = ""
    # UNKNOWN values the parser can only guess at (a path on the uploader's computer): storage
    # names that *might* hold the file. Never served or written unless a check finds the file.
    guesses: tuple[str, ...] = ()


# "https://", "https:/" (collapsed), "https%3A%2F%2F" (percent-encoded): where a URL starts.
_SCHEME = re.compile(r"(?i)(?:^|(?<=/))https?(?::|%3A)(?:/|%2F)+")
_OTHER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_PROTOCOL_RELATIVE = re.compile(r"^//[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?/")
_VERSION = re.compile(r"^v\d+$")
_SIGNATURE = re.compile(r"^s--[A-Za-z0-9_-]+--$")
# One transformation component: comma-separated ``key_value`` parameters (``c_fill,w_300``), or a
# named one (``t_thumb``). Folder names of this storage never look like that: they start with the
# name prefix, and the SDK puts a version between transformations and a public_id with folders.
_TRANSFORMATION = re.compile(r"^(?:[a-z]{1,3}_[^,/]+)(?:,[a-z]{1,3}_[^,/]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELD_VALUE = re.compile(
    r"^(?:(?P<resource_type>image|raw|video)/(?P<type>upload|private|authenticated)/)?"
    r"(?:v(?P<version>\d+)/)?(?P<public_id>.*?)(?:\.(?P<format>[^./]+))?$"
)


def parse_media_value(value: str | None, context: MediaContext) -> MediaValue:
    """Classify one stored media value and propose its canonical form; never raises."""
    try:
        result = _parse(value, context)
        return _checked_repair(result, context) if result.category is MediaCategory.FIXABLE else result
    except Exception as error:
        # A report line beats a crashed scan of a million rows.
        return MediaValue(MediaCategory.UNKNOWN, reason=f"unparseable ({type(error).__name__})")


# Names that need no parsing: plain characters, no scheme, no percent, no leading slash or dot.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-./]*")


def is_plain_canonical(value: str, context: MediaContext) -> bool:
    """The common case of a scan (an already canonical name), decided without the full parse."""
    if context.kind is StorageKind.CLOUDINARY_FIELD or not _PLAIN_NAME.fullmatch(value):
        return False
    prefix = context.storage_prefix
    return not (
        "//" in value
        or "/." in value
        or value.endswith("/")
        or (prefix and (value.startswith(prefix + prefix) or value == prefix.rstrip("/")))
    )


def _parse(value: str | None, context: MediaContext, *, fast: bool = True) -> MediaValue:
    if fast and value is not None and is_plain_canonical(value, context):
        return MediaValue(MediaCategory.CANONICAL, value, reason="storage name")
    if value is None or not value.strip():
        return MediaValue(MediaCategory.EMPTY, reason="no file")
    text = value.strip()
    if _CONTROL.search(text):
        return MediaValue(MediaCategory.UNKNOWN, reason="control characters in the value")
    url = _innermost_url(text)
    if url is not None:
        result = _parse_url(url, context)
    elif _CLIENT_PATH.search(text):
        return _client_path(text, context)
    elif _OTHER_SCHEME.match(text) and not _looks_like_windows_path(text):
        return MediaValue(MediaCategory.UNKNOWN, reason=f"not a file name or http(s) URL ({text[:12]}...)")
    elif context.kind is StorageKind.CLOUDINARY_FIELD:
        result = _parse_cloudinary_field_value(text)
    else:
        result = _parse_name(text, context)
    if result.category is MediaCategory.CANONICAL and result.canonical_name != value:
        # Canonical after trimming blanks: the stored value itself still needs the rewrite.
        return MediaValue(MediaCategory.FIXABLE, result.canonical_name, reason="surrounding blanks")
    return result


def _checked_repair(result: MediaValue, context: MediaContext) -> MediaValue:
    """A repair is proposed only if it is canonical itself: --apply never writes a value that the
    next run would rewrite again or call unknown."""
    again = _parse(result.canonical_name, context)
    if again.category is not MediaCategory.CANONICAL:
        return MediaValue(MediaCategory.UNKNOWN, reason=f"no canonical repair ({again.reason})")
    return result


# A path on the uploader's computer: what a browser submits for a file input (C:\\fakepath\\x.jpg),
# also behind MEDIA_URL or a storage prefix (media/C:/fakepath/x.jpg, what an earlier repair made of it).
_CLIENT_PATH = re.compile(r"(?:^|[\\/])[A-Za-z]:[\\/]")


def _client_path(text: str, context: MediaContext) -> MediaValue:
    """No storage shape: the file's own name under the storage is only a guess, checked or dropped."""
    base = text.replace("\\", "/").rsplit("/", 1)[-1]
    guesses: tuple[str, ...] = ()
    if base and _is_safe_name(base) and not _OTHER_SCHEME.match(base):
        guess = base if context.kind is StorageKind.CLOUDINARY_FIELD else context.name_prefix + base
        again = _parse(guess, context)
        if again.category is MediaCategory.CANONICAL and again.canonical_name == guess:
            guesses = (guess,)
    return MediaValue(
        MediaCategory.UNKNOWN, reason="a path on the uploader's computer, not a storage name", guesses=guesses
    )


def _looks_like_windows_path(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z]:[\\/]", text))


def _innermost_url(text: str) -> str | None:
    """The URL a value refers to, innermost first (a storage's URL of a stored URL holds that URL)."""
    if _PROTOCOL_RELATIVE.match(text):
        text = "https:" + text
    path_end = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    starts = [m for m in _SCHEME.finditer(text) if m.start() < path_end]
    if not starts:
        return None
    last = starts[-1]
    scheme = text[last.start() : last.end()].split(":", 1)[0].split("%", 1)[0].lower()
    rest = text[last.end() :]
    if "%3a" in text[last.start() : last.end()].lower() or "%2f" in rest[:200].lower():
        # Percent-encoded by a storage's url() (FileSystemStorage quotes ':'): decode once.
        rest = unquote(rest)
    return f"{scheme}://{rest.lstrip('/')}"


def _parse_url(url: str, context: MediaContext) -> MediaValue:
    parts = urlsplit(url)
    host = (parts.netloc or "").lower()
    if not parts.hostname:
        return MediaValue(MediaCategory.UNKNOWN, reason="URL without a host")
    segments = [segment for segment in parts.path.split("/") if segment]
    account = _account_segments(host, segments, context)
    if account is None:
        return MediaValue(MediaCategory.EXTERNAL, external_url=url, reason="another host or account")
    if len(account) < 3:
        return MediaValue(MediaCategory.UNKNOWN, reason="this account's URL without a public_id")
    resource_type, delivery_type, rest = account[0], account[1], account[2:]
    if resource_type not in RESOURCE_TYPES:
        return MediaValue(MediaCategory.UNKNOWN, reason=f"unsupported delivery URL form ({resource_type}/)")
    if rest and _SIGNATURE.match(rest[0]):
        rest = rest[1:]
    version: str | None = None
    versions = [index for index, segment in enumerate(rest) if _VERSION.match(segment)]
    if versions:
        version = rest[versions[0]][1:]
        rest = rest[versions[0] + 1 :]
    else:
        while len(rest) > 1 and _TRANSFORMATION.match(rest[0]):
            rest = rest[1:]
    if not rest:
        return MediaValue(MediaCategory.UNKNOWN, reason="this account's URL without a public_id")
    public_id = unquote("/".join(rest))
    extension: str | None = None
    last = public_id.rsplit("/", 1)[-1]
    if resource_type != "raw" and "." in last.strip("."):
        public_id, extension = public_id.rsplit(".", 1)
    if not _is_safe_name(public_id):
        return MediaValue(MediaCategory.UNKNOWN, reason="this account's URL with an unsafe public_id")

    if context.kind is StorageKind.CLOUDINARY_FIELD:
        if delivery_type not in CLOUDINARY_FIELD_TYPES:
            return MediaValue(MediaCategory.EXTERNAL, external_url=url, reason=f"{delivery_type} URL")
        stored = f"{resource_type}/{delivery_type}/"
        stored += f"v{version}/" if version else ""
        stored += public_id + (f".{extension}" if extension else "")
        return MediaValue(MediaCategory.FIXABLE, stored, reason="full delivery URL stored")

    if resource_type != context.resource_type or delivery_type != context.delivery_type:
        return MediaValue(
            MediaCategory.EXTERNAL,
            external_url=url,
            reason=f"this account's {resource_type}/{delivery_type} URL: the field's storage serves "
            f"{context.resource_type}/{context.delivery_type}",
        )
    # A delivery URL names its resource exactly: "media/media/x" there is a real public_id (the
    # storage uploads under the prefix it is given), so no doubled prefix is collapsed here.
    name = public_id
    if context.name_prefix and not name.startswith(context.name_prefix):
        return MediaValue(
            MediaCategory.EXTERNAL,
            external_url=url,
            reason=f"this account's URL outside the storage's prefix {context.name_prefix}",
        )
    return MediaValue(MediaCategory.FIXABLE, name, reason="full delivery URL stored")


def _account_segments(host: str, segments: list[str], context: MediaContext) -> list[str] | None:
    """The path after this account's delivery prefix, or None when the URL is someone else's."""
    cloud = context.cloud_name
    if cloud is None or context.kind not in (StorageKind.CLOUDINARY_STORAGE, StorageKind.CLOUDINARY_FIELD):
        return None
    hosts = {h.lower() for h in context.delivery_hosts}
    if SHARED_CDN_HOST.match(host) or host in hosts:
        if segments and segments[0] == cloud:
            return segments[1:]
        if host in hosts and segments and segments[0] in RESOURCE_TYPES:
            return segments  # a private distribution: no cloud name in the path
        return None
    if re.fullmatch(rf"{re.escape(cloud.lower())}-res(?:-\d+)?\.cloudinary\.com", host):
        return segments
    return None


def _collapse_prefix(name: str, prefix: str) -> str:
    while prefix and name.startswith(prefix + prefix):
        name = name[len(prefix) :]
    return name


def _is_safe_name(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name:
        return False
    return all(segment not in ("", ".", "..") for segment in name.split("/"))


def _parse_name(text: str, context: MediaContext) -> MediaValue:
    name = text
    reasons: list[str] = []
    if "\\" in name:
        name = name.replace("\\", "/")
        reasons.append("backslashes")
    media_path = context.media_path
    if name.startswith("/"):
        root = (context.media_root or "").rstrip("/")
        if media_path and (name == f"/{media_path}" or name.startswith(f"/{media_path}/")):
            name = name[len(media_path) + 1 :].lstrip("/")
            reasons.append(f"MEDIA_URL (/{media_path}/) glued in front")
        elif root and name.startswith(root + "/"):
            name = name[len(root) + 1 :]
            reasons.append("absolute path under MEDIA_ROOT")
        else:
            return MediaValue(MediaCategory.UNKNOWN, reason="absolute path outside MEDIA_URL and MEDIA_ROOT")
    prefix = context.storage_prefix
    collapsed = _collapse_prefix(name, prefix)
    if collapsed != name:
        name = collapsed
        reasons.append(f"doubled prefix {prefix}")
    if not name or name.rstrip("/") == prefix.rstrip("/"):
        return MediaValue(MediaCategory.UNKNOWN, reason="a folder, not a file")
    if not _is_safe_name(name):
        return MediaValue(MediaCategory.UNKNOWN, reason="empty, '.' or '..' path segments")
    if _OTHER_SCHEME.match(name) and not _looks_like_windows_path(name):
        # "/media/A:b" stripped of its prefix would read as a URL of scheme "a:", not a file name.
        return MediaValue(MediaCategory.UNKNOWN, reason=f"not a file name or http(s) URL ({name[:12]}...)")
    if reasons and context.name_prefix and not name.startswith(context.name_prefix):
        # A repaired name is written the way the storage itself names files.
        name = context.name_prefix + name
    if name == text:
        return MediaValue(MediaCategory.CANONICAL, name, reason="storage name")
    return MediaValue(MediaCategory.FIXABLE, name, reason=", ".join(reasons) or "storage name")


def _parse_cloudinary_field_value(text: str) -> MediaValue:
    if text.startswith("/") or not _FIELD_VALUE.match(text):
        return MediaValue(MediaCategory.UNKNOWN, reason="not a CloudinaryField value")
    return MediaValue(MediaCategory.CANONICAL, text, reason="CloudinaryField value")


def candidate_names(parsed: MediaValue, context: MediaContext) -> tuple[str, ...]:
    """Every storage name ``parsed`` may refer to, in order of preference; the first whose file
    exists is the right one (normalize_media_urls checks them; the URL helper, which cannot, serves
    the first: ``canonical_name``). Each is canonical itself, so writing any of them is final.

    Under FileSystemStorage, MEDIA_URL's folder in front of a name (``media/programs/x.jpg``) may be
    a real folder of MEDIA_ROOT or a prefix glued on by mistake: both readings are candidates.
    For an UNKNOWN value, its guesses.
    """
    if parsed.canonical_name is None:
        return parsed.guesses
    names = [parsed.canonical_name]
    media_path = context.media_path
    if context.kind is StorageKind.FILESYSTEM and media_path:
        name = parsed.canonical_name
        while name.startswith(f"{media_path}/"):
            name = name[len(media_path) + 1 :]
            again = _parse(name, context)
            if again.category is MediaCategory.CANONICAL and again.canonical_name == name:
                names.append(name)
    return tuple(names)


def lookup_public_ids(name: str, context: MediaContext) -> tuple[str, ...]:
    """The public_ids the storage delivers ``name`` from, in Cloudinary's order of preference.

    django-cloudinary-storage prepends its prefix; an image or video asked for with an extension
    is the public_id with it if one exists, else the one without (the extension is a format).
    """
    if context.kind is StorageKind.CLOUDINARY_FIELD:
        match = _FIELD_VALUE.match(name)
        if match is None:
            return (name,)
        public_id = match.group("public_id")
        fmt = match.group("format")
        if (match.group("resource_type") or context.resource_type) == "raw" and fmt:
            return (f"{public_id}.{fmt}",)
        return (public_id,)
    prefix = context.name_prefix
    public_id = name if not prefix or name.startswith(prefix) else prefix + name
    last = public_id.rsplit("/", 1)[-1]
    if context.resource_type != "raw" and "." in last.strip("."):
        return (public_id, public_id.rsplit(".", 1)[0])
    return (public_id,)


def remote_keys(name: str, context: MediaContext) -> tuple[tuple[str, str, str], ...]:
    """``(resource_type, delivery_type, public_id)`` of each public_id ``name`` may be delivered from."""
    resource_type, delivery_type = context.resource_type, context.delivery_type
    if context.kind is StorageKind.CLOUDINARY_FIELD:
        match = _FIELD_VALUE.match(name)
        if match is not None:
            resource_type = match.group("resource_type") or resource_type
            delivery_type = match.group("type") or delivery_type
    return tuple((resource_type, delivery_type, public_id) for public_id in lookup_public_ids(name, context))


def cloudinary_field_context(
    resource_type: str = "image", delivery_type: str = "upload", *, sdk_config: Any = None
) -> MediaContext:
    """The context of the SDK's ``CloudinaryField`` (``sdk_config``: ``cloudinary.config()``)."""
    cloud, hosts = _sdk_delivery(sdk_config)
    return MediaContext(
        StorageKind.CLOUDINARY_FIELD,
        cloud_name=cloud,
        resource_type=resource_type,
        delivery_type=delivery_type,
        delivery_hosts=hosts,
    )


def _sdk_delivery(sdk_config: Any) -> tuple[str | None, frozenset[str]]:
    if sdk_config is None:
        return None, frozenset()
    hosts = set()
    for key in ("cname", "secure_distribution"):
        host = getattr(sdk_config, key, None)
        if host:
            hosts.add(str(host).lower())
    cloud = getattr(sdk_config, "cloud_name", None)
    return (str(cloud) if cloud else None), frozenset(hosts)


def media_context_for(storage: Any, *, media_url: str | None = None, sdk_config: Any = None) -> MediaContext:
    """The context of a Django storage instance (FileSystemStorage, django-cloudinary-storage, other).

    Detection goes by class name and module so this module imports neither Django's storages nor
    the cloudinary SDK; ``media_url`` and ``sdk_config`` default to the settings and the SDK's
    global configuration.
    """
    # default_storage; a project's lazy storage, which may itself wrap default_storage.
    while isinstance(storage, LazyObject):
        if storage._wrapped is empty:
            storage._setup()
        storage = storage._wrapped
    if media_url is None:
        from django.conf import settings

        media_url = str(settings.MEDIA_URL or "/")
    classes = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(storage).__mro__}
    if "cloudinary_storage.storage.MediaCloudinaryStorage" in classes:
        if sdk_config is None:
            import cloudinary

            sdk_config = cloudinary.config()
        cloud, hosts = _sdk_delivery(sdk_config)
        prefix = str(storage._get_prefix() or "").lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return MediaContext(
            StorageKind.CLOUDINARY_STORAGE,
            media_url=media_url,
            name_prefix=prefix,
            cloud_name=cloud,
            resource_type=str(getattr(storage, "RESOURCE_TYPE", "image")),
            delivery_hosts=hosts,
        )
    if "django.core.files.storage.filesystem.FileSystemStorage" in classes:
        return MediaContext(
            StorageKind.FILESYSTEM,
            media_url=str(getattr(storage, "base_url", None) or media_url),
            media_root=str(storage.location),
        )
    return MediaContext(StorageKind.OTHER, media_url=media_url)
