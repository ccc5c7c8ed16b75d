"""Error kinds, grouped by what the caller should do about them.

Every error lakeflux raises on purpose is one of these. The server maps each kind to one HTTP
status (server/errors.py); storage code maps backend exceptions into them so no caller ever
catches an fsspec, botocore or OS exception.
"""

from __future__ import annotations

from typing import Any


class LakefluxError(Exception):
    """Base of every deliberate lakeflux error; `data` carries structured detail for the client."""

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class Invalid(LakefluxError):
    """The caller sent something wrong: fix the input, do not retry as is (HTTP 400)."""


class NotFound(LakefluxError):
    """The named thing does not exist (HTTP 404)."""


class Conflict(LakefluxError):
    """The request clashes with current state: it exists already, or someone else won a race (HTTP 409)."""


class Unauthorized(LakefluxError):
    """Missing or wrong credentials (HTTP 401)."""


class Forbidden(LakefluxError):
    """Valid credentials, not allowed (HTTP 403)."""


class NotAllowed(LakefluxError):
    """The operation is never allowed on this thing, whatever the credentials (HTTP 405)."""


class TooLarge(LakefluxError):
    """The request exceeds a size limit (HTTP 413)."""


class LimitExceeded(LakefluxError):
    """A configured limit (columns, tables, databases) would be exceeded (HTTP 422)."""


class Unavailable(LakefluxError):
    """A transient failure (store down, buffer full): retry later, nothing was acknowledged (HTTP 503)."""

    def __init__(self, message: str, *, retry_after: float = 1.0, data: Any = None) -> None:
        super().__init__(message, data=data)
        self.retry_after = retry_after


class TimedOut(LakefluxError):
    """The work ran past its configured time limit and was stopped; nothing was left running (HTTP 504)."""


class Internal(LakefluxError):
    """A component failed on input it should have handled (an engine panic): report it (HTTP 500)."""


class BadGateway(LakefluxError):
    """A server we depend on (a plugin repository, ...) failed or could not be reached (HTTP 502)."""


class Corrupt(LakefluxError):
    """Stored data could not be decoded: an operator must look at the named object (HTTP 500)."""


class Fenced(Unavailable):
    """Another writer took our next WAL slot: this node stops accepting writes (HTTP 503)."""


class UnsupportedMediaType(Invalid):
    """A JSON endpoint got another Content-Type (HTTP 415)."""
