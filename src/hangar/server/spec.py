"""The vocabulary of the route table: a route and its one requirement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Requires:
    """The one (securable type, securable, privilege) a route needs.

    ``securable_type`` is a type name, or a function of the request context for routes whose type
    is in the request (grants); ``securable`` is a function of the request context that returns the
    securable's name, or ``None`` when the object the request names does not exist (then only a
    grant on the metastore can allow it, so that a 403 never tells whether something exists).
    ``privilege`` is a privilege name, or a function of the request context for the one route whose
    securable's type is chosen by the body (lineage edges); either way a request needs exactly one."""

    securable_type: str | Callable[[Any], str]
    securable: Callable[[Any], str | None]
    privilege: str | Callable[[Any], str]
    describe: str = ""  # how the securable is found, for the OpenAPI document and the docs


class _Marker:
    def __init__(self, name: str, doc: str):
        self.name, self.doc = name, doc

    def __repr__(self) -> str:
        return self.name


PUBLIC = _Marker("PUBLIC", "no authentication (health, readiness, the API document)")
AUTHENTICATED = _Marker("AUTHENTICATED", "any authenticated principal; results are filtered to what it may see, "
                                         "or it acts only on its own records (its tokens), or it becomes the owner "
                                         "of what it creates (experiments)")


@dataclass(frozen=True)
class Route:
    name: str  # also the audit action of a denial
    method: str
    path: str
    handler: Callable[[Any], Any]
    requires: Requires | _Marker
    status: int = 200
    summary: str = ""
    streaming: bool = False  # the handler is async, takes (ctx, request) and reads or writes the body itself
    # Further (securable type, securable or None, privilege) that the body names and the request would use
    # (the models an endpoint config serves), each checked by the guard after ``requires``.
    also: Callable[[Any], list[tuple[str, str | None, str]]] | None = None
