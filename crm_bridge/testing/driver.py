"""The backend driver: how the conformance kit acts on the vendor system behind the connector.

Why a separate object and not the connector: the kit must make changes the connector did *not*
make -- a person's edit, a deletion or a merge in the vendor's UI, a revoked token, throttling --
and then check that the connector reports them faithfully.  Doing those through the connector
under test would let a bug hide itself (a connector that stamps the wrong user on its own writes
would also stamp it on the "person's" ones).  So the author gives the kit a second, independent
way in: the backend object of an in-memory fake, an emulator's control plane, or a second API
client logged in as a different user.

Only :meth:`~BackendDriver.create`, :meth:`~BackendDriver.edit` and
:meth:`~BackendDriver.delete` are required.  Every other method raises
:class:`DriverUnsupported` by default, and the kit *skips* the tests that need it with a reason
naming the method -- so a missing hook shows up in ``pytest -rs`` as an untested claim instead of
passing silently.  This module does not import pytest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["BackendDriver", "DriverUnsupported"]


class DriverUnsupported(NotImplementedError):
    """A driver method the author did not implement; the kit skips the tests that need it.

    A distinct class (rather than any ``NotImplementedError``) so a connector bug that raises
    ``NotImplementedError`` -- the base class's answer for an undeclared capability -- still
    fails the kit instead of turning into a skip.
    """


class BackendDriver(ABC):
    """Out-of-band access to the vendor system, acting as a *person*, not as the integration.

    Records created, edited, deleted or merged here must look to the connector exactly like a
    person's work in the vendor's UI: in particular their ``modified_by`` must not be the
    connector's :attr:`~crm_bridge.connector.Connector.integration_user_id`.
    """

    @abstractmethod
    def create(self, obj: str, fields: Mapping[str, Any]) -> str:
        """Create a record of ``obj`` with ``fields`` as a person; return its id."""

    def create_many(self, obj: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create several records (the paging test seeds a few pages); ids in input order.

        The default calls :meth:`create` per row; override it when the backend has a batch
        path, so seeding three pages does not cost hundreds of requests.
        """
        return [self.create(obj, row) for row in rows]

    @abstractmethod
    def edit(self, obj: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Change ``fields`` of a record as a person (its version and modified time must move)."""

    @abstractmethod
    def delete(self, obj: str, record_id: str) -> None:
        """Delete a record as a person would in the vendor's UI (usually a soft delete)."""

    def merge(self, obj: str, winner: str, loser: str) -> None:
        """Merge ``loser`` into ``winner`` as a person would; needed to test ``MERGE_FEED``."""
        raise DriverUnsupported("merge()")

    def advance(self, seconds: float) -> None:
        """Move the backend's clock (and the connector's, if it keeps one) ``seconds`` forward.

        Needed for the tests that require records modified well apart in time (``INCREMENTAL``)
        without sleeping; without it they are skipped.  Between records the kit also calls it
        with small steps when available, so their modification times differ.
        """
        raise DriverUnsupported("advance()")

    def inject_rate_limit(self) -> None:
        """Make every following API call answer "429 Too Many Requests" until the test ends.

        The kit then expects :class:`~crm_bridge.errors.RateLimitedError` from the connector,
        after whatever retries its policy allows (on an injected clock: nothing may sleep).
        """
        raise DriverUnsupported("inject_rate_limit()")

    def inject_auth_failure(self) -> None:
        """Make every following API call answer "401 Unauthorized" (a revoked token / app).

        The kit then expects :class:`~crm_bridge.errors.AuthError` (after at most one token
        refresh), never a transient error the engine would retry forever.
        """
        raise DriverUnsupported("inject_auth_failure()")
