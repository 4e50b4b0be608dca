"""Cloudinary's signature rules, written from the documentation and checked against pycloudinary 1.46.

Upload/download API: every request parameter except ``file``, ``cloud_name``, ``resource_type``,
``api_key`` (and the signature itself) is signed; empty values are skipped; list values are joined
with commas; ``k=v`` pairs are sorted and joined with ``&``; the API secret is appended; the hex
digest is SHA-1 by default or SHA-256 when the client is configured with
``signature_algorithm="sha256"``. The server cannot see which algorithm the client used other than
by the digest's length, so that is how it is told apart here.

Signature version 2 (the SDK default) percent-encodes ``&`` inside each pair to stop parameter
smuggling; version 1 clients do not. Both are accepted, as Cloudinary does for old SDKs.

Delivery URLs: ``s--XXXXXXXX--`` is the first 8 characters of the URL-safe base64 of
SHA-1(``<transformations>/<public_id>[.<ext>]`` + secret), the version component excluded; with
``long_url_signature`` it is 32 characters of SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

ParamValue = str | list[str]
Params = Mapping[str, ParamValue]

EXCLUDED_FROM_SIGNATURE = frozenset({"file", "cloud_name", "resource_type", "api_key", "signature"})

SUPPORTED_ALGORITHMS = ("sha1", "sha256")
HEX_DIGEST_LENGTHS = {40: "sha1", 64: "sha256"}
SHORT_URL_SIGNATURE_LENGTH = 8
LONG_URL_SIGNATURE_LENGTH = 32


def string_to_sign(params: Params, signature_version: int = 2) -> str:
    pairs = []
    for name, value in params.items():
        if name in EXCLUDED_FROM_SIGNATURE:
            continue
        text = ",".join(value) if isinstance(value, list) else value
        if not text:
            continue
        pair = f"{name}={text}"
        if signature_version >= 2:
            pair = pair.replace("&", "%26")
        pairs.append(pair)
    return "&".join(sorted(pairs))


def sign(params: Params, api_secret: str, algorithm: str = "sha1", signature_version: int = 2) -> str:
    return hashlib.new(
        algorithm, (string_to_sign(params, signature_version) + api_secret).encode()
    ).hexdigest()


def algorithm_of(signature: str) -> str | None:
    return HEX_DIGEST_LENGTHS.get(len(signature))


def signature_matches(
    params: Params, signature: str, api_secret: str, allowed_algorithms: Iterable[str]
) -> bool:
    algorithm = algorithm_of(signature)
    if algorithm is None or algorithm not in set(allowed_algorithms):
        return False
    return any(
        hmac.compare_digest(sign(params, api_secret, algorithm, version), signature.lower())
        for version in (2, 1)
    )


def response_signature(public_id: str, version: int, api_secret: str, algorithm: str = "sha1") -> str:
    """What Cloudinary puts in an upload response's ``signature`` (verify_api_response_signature)."""
    to_sign = f"public_id={public_id}&version={version}"
    return hashlib.new(algorithm, (to_sign + api_secret).encode()).hexdigest()


def url_signature(to_sign: str, api_secret: str, long_signature: bool = False) -> str:
    """The text between ``s--`` and ``--`` in a signed delivery URL."""
    if long_signature:
        digest = hashlib.new("sha256", (to_sign + api_secret).encode()).digest()
        length = LONG_URL_SIGNATURE_LENGTH
    else:
        digest = hashlib.new("sha1", (to_sign + api_secret).encode()).digest()  # noqa: S324 - the protocol
        length = SHORT_URL_SIGNATURE_LENGTH
    return base64.urlsafe_b64encode(digest).decode()[:length]


def url_signature_matches(to_sign: str, signature: str, api_secret: str) -> bool:
    if len(signature) not in (SHORT_URL_SIGNATURE_LENGTH, LONG_URL_SIGNATURE_LENGTH):
        return False
    expected = url_signature(to_sign, api_secret, long_signature=len(signature) == LONG_URL_SIGNATURE_LENGTH)
    return hmac.compare_digest(expected, signature)
