"""The one exception tree of the farm; the API maps it to HTTP in ``web.errors``.

::

    FarmError
    ├── BadRequest            400  input that is well-formed but cannot be used (e.g. a bad frame spec)
    │   └── ValidationFailed  422  input that breaks a documented rule (paths, hashes, sizes)
    ├── Unauthorized          401  no token, or one that is unknown, revoked or expired
    ├── Forbidden             403  authenticated, but the role may not do this
    ├── NotFound              404  absent, or belonging to another company (never 403 for that)
    ├── Conflict              409  the request disagrees with current state
    │   ├── InvalidTransition 409  a state change the transition table does not allow
    │   └── MissingBlobs      409  a job names blobs the farm does not hold
    ├── PayloadTooLarge       413  an upload above the configured maximum
    ├── QuotaExceeded         429  a company limit stops this now
    ├── StorageError          503  the object store failed or is unreachable
    │   └── ObjectMissing     503  the store answered, and the object is not there (lost behind the farm's back)
    └── DatabaseUnavailable   503  the database stayed locked or unreachable past its busy timeout (Retry-After)

Every error carries its English ``message`` (the API's ``detail``, unchanged). An error a person may meet on a page
also carries a ``code`` and its ``params``: the monitor shows it in the viewer's language from the message
``error.<code>`` of ``web/templates/messages.toml``, whose English text is the same sentence (a test keeps the two
equal). Parameters named in ``STATUS_PARAMS`` hold a job's or chunk's status and are shown as its translated name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Parameters that hold a status value (``completed``): pages show the status's name in the viewer's language.
STATUS_PARAMS = frozenset({"status", "old", "new"})


class FarmError(Exception):
    """Base of every error the farm raises on purpose; ``code`` and ``params`` (optional) let a page say it in the
    viewer's language."""

    status_code = 500

    def __init__(self, message: str, *, code: str = "", params: Mapping[str, str | int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.params: dict[str, str | int] = dict(params or {})


class BadRequest(FarmError):
    status_code = 400


class ValidationFailed(BadRequest):
    status_code = 422


class Unauthorized(FarmError):
    status_code = 401


class Forbidden(FarmError):
    status_code = 403


class NotFound(FarmError):
    status_code = 404


class Conflict(FarmError):
    status_code = 409


class InvalidTransition(Conflict):
    """A state change that the transition table in ``farm.domain.states`` refuses."""

    def __init__(self, kind: str, ident: str, old: str, new: str) -> None:
        super().__init__(
            f"{kind} {ident}: cannot go from {old!r} to {new!r}",
            code=f"invalid_transition.{kind}",
            params={"ident": ident, "old": old, "new": new},
        )
        self.kind, self.ident, self.old, self.new = kind, ident, old, new


class MissingBlobs(Conflict):
    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            f"{len(missing)} blob(s) named in the manifest are not uploaded yet: {', '.join(missing)}; "
            "upload them with PUT /api/v1/blobs/{sha256} first"
        )
        self.missing = list(missing)


class PayloadTooLarge(FarmError):
    status_code = 413


class QuotaExceeded(FarmError):
    status_code = 429


class StorageError(FarmError):
    status_code = 503


class ObjectMissing(StorageError):
    """The store is up and says the object does not exist: waiting will not bring it back."""


class DatabaseUnavailable(FarmError):
    """The database is busy (locked) or unreachable: the request changed nothing; retrying later is right."""

    status_code = 503
    retry_after_s = 5
