"""Errors of the Delta Sharing server: each maps onto the protocol's error body and HTTP status."""

from __future__ import annotations

from mesh_core.errors import MeshError


class ShareError(MeshError):
    """A request the server refuses; `status` and `error_code` make the protocol's error body."""

    status = 500
    error_code = "INTERNAL_ERROR"

    def body(self) -> dict:
        return {"errorCode": self.error_code, "message": str(self)}


class ShareAuthError(ShareError):
    """No bearer token, or one that is unknown, revoked or expired."""

    status = 401
    error_code = "UNAUTHENTICATED"


class ShareForbiddenError(ShareError):
    """The recipient may not read this table (the mesh's read rules)."""

    status = 403
    error_code = "PERMISSION_DENIED"


class ShareNotFoundError(ShareError):
    """No such share, schema, table, version or recipient."""

    status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ShareBadRequestError(ShareError):
    """A malformed request: a bad version, parameter or body."""

    status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class ShareRateLimitError(ShareError):
    """The token sent more requests than its rate allows; `retry_after` (seconds) says when to retry."""

    status = 429
    error_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self):
        return (type(self), (str(self), self.retry_after))


class ShareTooLargeError(ShareError):
    """A request body over the size the server accepts."""

    status = 413
    error_code = "REQUEST_TOO_LARGE"


class ShareUriTooLongError(ShareError):
    """A request URL longer than the server reads."""

    status = 414
    error_code = "REQUEST_TOO_LARGE"
