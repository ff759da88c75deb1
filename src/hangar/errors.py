"""One exception tree for all of Hangar.

Every error carries a stable ``error_code`` (what a client can branch on) and the HTTP status a
server boundary maps it to. Messages say what was wrong and what to do about it.
"""

from __future__ import annotations


class HangarError(Exception):
    """Base of every error Hangar raises on purpose."""

    error_code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}


class InvalidArgumentError(HangarError):
    """A caller passed something Hangar cannot use (bad name, bad option, bad URI)."""

    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class InvalidURIError(InvalidArgumentError):
    error_code = "INVALID_URI"


class SchemaMismatchError(InvalidArgumentError):
    """Model input or params do not match the model's signature."""

    error_code = "SCHEMA_MISMATCH"


class UnknownParamError(SchemaMismatchError):
    error_code = "UNKNOWN_PARAM"


class MalformedRequestError(InvalidArgumentError):
    """A request body is not what its content type says (bad JSON, bad CSV) or has no known shape."""

    error_code = "MALFORMED_REQUEST"


class UnsupportedMediaTypeError(HangarError):
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class PayloadTooLargeError(HangarError):
    error_code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class UnauthenticatedError(HangarError):
    """No credentials, or credentials that are malformed, unknown, expired or revoked.

    The message a server sends is always the same generic one: it must not tell a caller
    which of these it was."""

    error_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDeniedError(HangarError):
    """The authenticated principal lacks the privilege a request needs."""

    error_code = "PERMISSION_DENIED"
    http_status = 403


class NotFoundError(HangarError):
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404


class EndpointNotFoundError(NotFoundError):
    error_code = "ENDPOINT_NOT_FOUND"


class AlreadyExistsError(HangarError):
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 409


class ConflictError(HangarError):
    """The request contradicts what is stored (a param logged again with another value)."""

    error_code = "INVALID_STATE"
    http_status = 409


class ModelPackageError(HangarError):
    """A model package on disk is missing, incomplete, corrupt or unreadable."""

    error_code = "INVALID_MODEL_PACKAGE"
    http_status = 422


class CorruptPackageError(ModelPackageError):
    error_code = "CORRUPT_MODEL_PACKAGE"


class UnsupportedFormatError(ModelPackageError):
    """The manifest was written by a newer Hangar (or names a flavor this install lacks)."""

    error_code = "UNSUPPORTED_MODEL_FORMAT"


class MissingDependencyError(HangarError):
    """An optional library is needed; the message names the extra that installs it."""

    error_code = "MISSING_DEPENDENCY"
    http_status = 501


class StoreUnavailableError(HangarError):
    """The metadata store cannot be reached or opened."""

    error_code = "STORE_UNAVAILABLE"
    http_status = 503


class MissingCredentialError(HangarError):
    """A secret a model needs (an API key) is not in the environment variable it names."""

    error_code = "MISSING_CREDENTIAL"
    http_status = 503


class StreamingNotSupportedError(InvalidArgumentError):
    error_code = "STREAMING_NOT_SUPPORTED"


class ModelExecutionError(HangarError):
    """The model's own code failed while predicting."""

    error_code = "MODEL_EXECUTION_ERROR"
    http_status = 500


class BatchJobError(HangarError):
    """A batch job cannot start or go on (unreadable input, output of another job, bad columns)."""

    error_code = "BATCH_JOB_FAILED"
    http_status = 400


class ServerOverloadedError(HangarError):
    """The server's bounded request queue is full: retry after ``retry_after`` seconds."""

    error_code = "SERVER_OVERLOADED"
    http_status = 503
    retry_after = 1


class TooManyRequestsError(HangarError):
    """Too many failed attempts (or calls) from one client: retry after ``retry_after`` seconds."""

    error_code = "RATE_LIMITED"
    http_status = 429
    retry_after = 60

    def __init__(self, message: str, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeoutError(HangarError):
    """A request waited and ran longer than the server's per-request timeout."""

    error_code = "REQUEST_TIMEOUT"
    http_status = 504


class EnvironmentBuildError(HangarError):
    error_code = "ENVIRONMENT_BUILD_FAILED"
    http_status = 500


class UpstreamAPIError(HangarError):
    """An OpenAI-compatible API that a model calls answered with an error."""

    error_code = "UPSTREAM_API_ERROR"
    http_status = 502


def require(module: str, extra: str):
    """Import an optional module or raise MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"This needs the Python package '{module.split('.')[0]}', which is not installed "
            f"({exc}). Install it with: pip install 'hangar[{extra}]'"
        ) from None
