"""RFC 9457 problem details: every error of the JSON API is ``application/problem+json``.

``raise ApiProblem(404, "no-such-task", detail=…)`` in a handler; :func:`as_problem` turns it (or an aiohttp
HTTP error raised by the desk's permission checks) into the answer. A wrong field says which in ``errors``::

    {"type": "/api/v1/problems/invalid-input", "title": "Invalid input", "status": 422,
     "detail": "1 field is wrong", "instance": "/api/v1/tasks?colour=blue",
     "errors": [{"name": "colour", "location": "query", "detail": "Input should be 'red', 'yellow' or 'green'"}]}
"""

from __future__ import annotations

import json
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

Location = Literal["query", "path", "body", "header"]

# slug -> (status, title): the kinds of problem the API answers (docs/api.md lists them too).
KINDS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "unauthorized": (401, "Sign in or send a bearer token"),
    "invalid-token": (401, "The bearer token is not valid"),
    "forbidden": (403, "Not allowed"),
    "csrf": (403, "The CSRF token is missing or wrong"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Not allowed in the task's state"),
    "unsupported-media-type": (415, "Send application/json"),
    "invalid-input": (422, "Invalid input"),
    "server-error": (500, "Internal error"),
}
_BY_STATUS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed", 400: "bad-request"}


class FieldError(BaseModel):
    """One wrong field: its name (dotted for nested body fields), where it was sent, and what is wrong."""

    name: str
    location: Location
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(description="A URI reference naming the kind of problem (see docs/api.md)")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str = ""
    instance: str = Field(description="The request's path and query")
    errors: list[FieldError] | None = Field(default=None, description="Per-field errors (400 and 422)")


class ApiProblem(Exception):
    """Raise in an API handler to answer a problem of kind ``kind`` (a key of :data:`KINDS`)."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or kind)
        assert kind in KINDS, kind
        self.kind, self.detail, self.errors, self.headers = kind, detail, errors, headers or {}

    @property
    def status(self) -> int:
        return KINDS[self.kind][0]


def problem_response(request: web.Request, exc: ApiProblem) -> web.Response:
    status, title = KINDS[exc.kind]
    body = Problem(
        type=TYPE_BASE + exc.kind,
        title=title,
        status=status,
        detail=exc.detail,
        instance=request.path_qs,
        errors=exc.errors,
    )
    return web.Response(
        text=json.dumps(body.model_dump(mode="json", exclude_none=True), ensure_ascii=False),
        status=status,
        content_type=MEDIA_TYPE,
        charset="utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **exc.headers},
    )


def from_http_error(exc: web.HTTPException) -> ApiProblem:
    """The problem for an aiohttp HTTP error (the desk's ``require`` and ``forbidden`` raise these)."""
    kind = _BY_STATUS.get(exc.status, "bad-request" if exc.status < 500 else "server-error")
    if kind not in KINDS:  # pragma: no cover - _BY_STATUS names only known kinds
        kind = "bad-request"
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    detail = {401: "this request needs a desk session or an API token", 403: "your role may not do this"}.get(
        exc.status, exc.reason
    )
    return ApiProblem(kind, detail, headers=headers)


def field_errors(exc: ValidationError, location: Location) -> list[FieldError]:
    """pydantic's errors as fields (``loc`` joined by dots; a missing body is the field "")."""
    return [
        FieldError(name=".".join(str(p) for p in e["loc"]), location=location, detail=e["msg"]) for e in exc.errors()
    ]


def invalid(errors: list[FieldError]) -> ApiProblem:
    n = len(errors)
    return ApiProblem("invalid-input", f"{n} field{'s are' if n != 1 else ' is'} wrong", errors=errors)
