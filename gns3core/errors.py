"""Domain errors: handlers and emulator code raise these; one place turns them into API responses."""

from __future__ import annotations


class ApiError(Exception):
    """An error the client should see, with the HTTP status of the API v1 contract."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    """400: the request itself is wrong (body, schema, malformed id)."""

    status = 400


class Forbidden(ApiError):
    """403: allowed only on a local server, or a path that leaves its sandbox."""

    status = 403


class NotFound(ApiError):
    """404: unknown project, VM, device or file."""

    status = 404


class Conflict(ApiError):
    """409: the request is valid but the current state or the host refuses it."""

    status = 409


class EmulatorError(Conflict):
    """409 raised by emulator code: a program missing, a process failing, an invalid state."""
