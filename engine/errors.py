"""The Flotilla error hierarchy, shared by every layer.

Pure modules raise `SpecError` when user input cannot be honoured (an unknown
catalog service, a CEL expression that does not compile); adapters raise
`RetriableError` / `NonRetriableError` chained with `from` around I/O
failures. The controller translates them once, at the handler boundary, into
a kopf error, a status condition (`reason` becomes the condition reason,
`str(error)` its message) and an Event.

This module imports nothing from the project, so anything may import it.
"""

from __future__ import annotations

from typing import Any


class FlotillaError(Exception):
    """Base of all domain errors: a CamelCase `reason`, a message, retriability."""

    default_reason = "Error"
    retriable = False

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        # The spec path at fault, e.g. "spec.services[1].version"; it lets the
        # status message point users to the exact line they have to change.
        self.field = field

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, field={self.field!r}, {self.message!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickling replays `cls(*args)`, which would lose the
        # keyword-only attributes; rebuild from the instance dict instead.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[FlotillaError], state: dict[str, Any]) -> FlotillaError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class RetriableError(FlotillaError):
    """A temporary failure (unreachable cluster, API timeout): try again after `delay`."""

    default_reason = "TemporaryError"
    retriable = True

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        delay: float = 10.0,
    ):
        super().__init__(message, reason=reason, field=field)
        self.delay = delay


class NonRetriableError(FlotillaError):
    """A permanent failure: retrying with the same input cannot succeed."""

    default_reason = "PermanentError"


class SpecError(NonRetriableError):
    """User input the controller cannot honour; always names the spec field at fault."""

    default_reason = "InvalidSpec"

    def __init__(self, message: str, *, field: str, reason: str | None = None):
        super().__init__(message, reason=reason, field=field)
        self.field: str = field


class ConflictError(RetriableError):
    """Another profile owns the object or release; `winner` is that owner.

    Retriable because ownership changes when the winner is deleted or stops
    matching the cluster.
    """

    default_reason = "Conflict"

    def __init__(
        self,
        message: str,
        *,
        winner: str,
        reason: str | None = None,
        field: str | None = None,
        delay: float = 60.0,
    ):
        super().__init__(message, reason=reason, field=field, delay=delay)
        self.winner = winner
