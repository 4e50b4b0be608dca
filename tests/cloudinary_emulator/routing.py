"""Which API a request path belongs to; the endpoint kind is what faults and call counts key on."""

from __future__ import annotations

from dataclasses import dataclass

from .faults import EndpointKind

API_VERSION = "v1_1"
UPLOAD_ACTIONS = ("upload", "destroy")
# Upload API URLs are /v1_1/<cloud>/<resource_type>/<action>; Admin API ones never start with a
# resource type (resources/..., tags/..., usage). An Upload API action the emulator does not
# implement (rename, explicit, tags, ...) is still routed as one, to be told so plainly.
UPLOAD_RESOURCE_TYPES = ("image", "video", "raw", "auto")


@dataclass(frozen=True)
class Route:
    endpoint: EndpointKind
    cloud_name: str
    # Path components after the cloud name, still percent-encoded.
    segments: list[str]


def route(raw_path: str) -> Route | None:
    components = raw_path.strip("/").split("/")
    if len(components) < 2 or not components[0]:
        return None
    if components[0] == API_VERSION:
        cloud_name, segments = components[1], components[2:]
        if len(segments) == 2 and segments[1] in UPLOAD_ACTIONS:
            return Route(EndpointKind.UPLOAD, cloud_name, segments)
        if len(segments) == 2 and segments[1] == "download":
            return Route(EndpointKind.DOWNLOAD, cloud_name, segments)
        if len(segments) == 2 and segments[0] in UPLOAD_RESOURCE_TYPES:
            return Route(EndpointKind.UPLOAD, cloud_name, segments)
        if segments:
            return Route(EndpointKind.ADMIN, cloud_name, segments)
        return None
    return Route(EndpointKind.DELIVERY, components[0], components[1:])
