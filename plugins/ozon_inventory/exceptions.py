"""Errors of the Ozon client and the pipeline.

Each names what was wrong and where (the Ozon method, the account, the file), never a secret.
``permanent`` errors are not worth retrying: a bad key, a missing role, a bad request, a method
Ozon switched off. The DAG's retry policy fails those at once.
"""

from __future__ import annotations

from datetime import datetime


class OzonInventoryError(Exception):
    """Base of every error this package raises."""

    permanent = False


class OzonApiError(OzonInventoryError):
    """Ozon answered a request with an error body (rpcStatus) that retrying will not change.

    ``status`` is the HTTP status the error stands for; ``answered`` the one Ozon sent when they
    differ (an error body under HTTP 200 is handled as the status of its code).
    """

    permanent = True

    def __init__(
        self, method: str, status: int, code: int | str | None, message: str, answered: int | None = None
    ):
        self.method, self.status, self.code, self.message = method, status, code, message
        self.answered = answered
        if answered is None or answered == status:
            said = f"answered HTTP {status}, code {code}"
        else:
            said = f"answered HTTP {answered} with an error body, code {code} (handled as HTTP {status})"
        super().__init__(f"Ozon {method} {said}: {message}")


class OzonAuthError(OzonApiError):
    """Missing headers, a bad Client-Id, an unknown or deactivated Api-Key, or a missing role."""


class OzonMethodUnavailable(OzonApiError):
    """Ozon switched the method off ("Obsolete method cannot be used", or 404 for the path)."""


class OzonKeyExpired(OzonInventoryError):
    """The account's Api-Key has expired (``/v1/roles`` → ``expires_at``): every request would fail."""

    permanent = True

    def __init__(self, account: str, conn_id: str, expired_on: datetime):
        self.account, self.conn_id, self.expired_on = account, conn_id, expired_on
        super().__init__(
            f"the Api-Key of account {account} expired on {expired_on.date().isoformat()}: issue a new one in "
            f"Seller Center → Settings → API keys and update connection {conn_id}"
        )


class OzonTransientError(OzonInventoryError):
    """Retries ran out on 429 / 5xx / timeouts / broken answers; a later try may succeed."""

    def __init__(self, method: str, attempts: int, cause: str, status: int | None = None):
        self.method, self.attempts, self.cause, self.status = method, attempts, cause, status
        super().__init__(f"Ozon {method} failed after {attempts} attempts: {cause}")


class OzonMethodDown(OzonInventoryError):
    """The circuit breaker declared the method down in this run: no further request goes to it.

    Permanent for the run: a task retry would only hammer a dead method again (Ozon may restrict an
    account that sends many erroneous requests). The fetch moves to the successor where there is one.
    """

    permanent = True

    def __init__(self, method: str, status: int | None, cause: str, failures: int):
        self.method, self.status, self.cause, self.failures = method, status, cause, failures
        super().__init__(
            f"Ozon {method} is down for this run after {failures} consecutive failures "
            f"(last status {status if status is not None else 'none'}: {cause}); no further request is sent to it"
        )


class OzonSchemaChanged(OzonInventoryError):
    """Ozon's answer changed shape: its rows are not where they were, a field paging reads is gone,
    or most records lack a field the source needs (Ozon renames and retires fields).

    Permanent: the same method answers the same way until the project learns the new shape. The
    source keeps its last good rows (a degraded run). ``example`` is a record of the answer as
    JSON text, already cut short and cleared of the account's credentials by the client.
    """

    permanent = True

    def __init__(self, method: str, field: str, detail: str, example: str):
        self.method, self.field, self.detail, self.example = method, field, detail, example
        super().__init__(
            f"Ozon {method} answered in a changed shape: {detail}; e.g. {example}. Nothing of it is "
            f"loaded: the source keeps its last good rows until the project reads the new shape "
            f"(check Ozon's news for {method})"
        )


class OzonPagingError(OzonInventoryError):
    """Paging did not end as documented: a repeated cursor or more pages than the cap."""

    permanent = True


class OzonSnapshotChanged(OzonInventoryError):
    """The data changed while it was being paged (duplicates or a moving total)."""


class OzonRowsRepeated(OzonSnapshotChanged):
    """Rows came more than once across the pages of one complete pass (or the count missed the total).

    Either the data moved while it was paged, or Ozon's answer itself lists a row twice; only a
    second pass tells which (``fetch`` compares the repeated rows of two passes). Every page was read.
    ``repeated`` holds the hashes of the repeated rows' keys (``fetch`` reads the keys back from the
    staged answers).
    """

    def __init__(self, message: str, repeated: frozenset[int], rows: int, total: int | None):
        super().__init__(message)
        self.repeated, self.rows, self.total = repeated, rows, total

    @property
    def consistent(self) -> bool:
        """Every row Ozon counted came (the total, where stated, counts the repeats too)."""
        return bool(self.repeated) and (self.total is None or self.total == self.rows)


class ConfigError(OzonInventoryError):
    """A connection, param or Variable holds a value the pipeline cannot use."""

    permanent = True


class StagingError(OzonInventoryError):
    """A staged file is missing, unreadable or does not match its manifest."""

    permanent = True


class StagingWriteError(OzonInventoryError):
    """A staged file could not be written (a full disk, a read-only folder); it names the file.

    Not permanent: once space is freed, a retry of the task succeeds.
    """


class ShrinkGuardError(OzonInventoryError):
    """A snapshot is far smaller than the account's last good one; loading it would wipe data.

    ``figures``: per source that shrank, what was counted (``unit``), ``before`` and ``after``; what
    an operator asked to approve the load is shown."""

    permanent = True

    def __init__(self, message: str, figures: list[dict[str, object]] | None = None):
        super().__init__(message)
        self.figures = figures or []


class SchemaVersionError(OzonInventoryError):
    """The target database's schema is not the version this code reads and writes: none yet, an older
    one (the ``migrate`` task has not run), or a newer one (a newer ozon-inventory migrated it)."""

    permanent = True


class LockNotGranted(OzonInventoryError):
    """A lock the migration or the load needs was held by another session past ``lock_timeout``, on
    every attempt; the message names the sessions holding it. Not permanent: once they end, a retry
    goes through."""
