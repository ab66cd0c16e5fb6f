"""The callback-style `Scheduler` base class and the mapping from v1 events to its callbacks.

Subclass `Scheduler` and override the callbacks you need; every one is a no-op by default
(`error` logs). Each callback gets the *driver* first: the object whose call methods the
framework uses (`SchedulerClient` in asyncio code, `SchedulerDriver` in plain scripts).

With `SchedulerClient` a callback may be a plain method or an `async def` (it is awaited);
with the thread-based `SchedulerDriver` callbacks are plain methods run on one callback thread.
Callbacks run one at a time, in event order. Implicit acknowledgement of a status update
happens after `status_update` returns without raising.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from mezzo.api.common import (
    AgentID,
    ExecutorID,
    FrameworkID,
    InverseOffer,
    MasterInfo,
    Offer,
    OfferID,
    OperationStatus,
    TaskStatus,
)
from mezzo.api.scheduler import Event, EventType

log = logging.getLogger(__name__)

MaybeAwaitable = Awaitable[None] | None


class Scheduler:
    """Override what you need. `driver` is the client or driver that delivered the event."""

    def registered(
        self, driver: Any, framework_id: FrameworkID, master_info: MasterInfo | None
    ) -> MaybeAwaitable:
        """First SUBSCRIBED of this client: the framework has its id."""

    def reregistered(self, driver: Any, master_info: MasterInfo | None) -> MaybeAwaitable:
        """SUBSCRIBED again after a disconnection (same framework id, possibly a new master)."""

    def disconnected(self, driver: Any) -> MaybeAwaitable:
        """The subscription stream ended; the client is reconnecting. Offers are now invalid."""

    def resource_offers(self, driver: Any, offers: list[Offer]) -> MaybeAwaitable:
        """New offers: accept (launch) or decline each, or they stay allocated to you."""

    def inverse_offers(self, driver: Any, inverse_offers: list[InverseOffer]) -> MaybeAwaitable:
        """Maintenance: the operator asks for these resources back."""

    def offer_rescinded(self, driver: Any, offer_id: OfferID) -> MaybeAwaitable:
        """The offer is no longer valid."""

    def inverse_offer_rescinded(self, driver: Any, offer_id: OfferID) -> MaybeAwaitable:
        """The inverse offer is no longer valid."""

    def status_update(self, driver: Any, status: TaskStatus) -> MaybeAwaitable:
        """A task changed state. Acknowledged after this returns (implicit acknowledgements)."""

    def operation_status_update(self, driver: Any, status: OperationStatus) -> MaybeAwaitable:
        """Feedback on an offer operation that carried an `id`."""

    def framework_message(
        self, driver: Any, executor_id: ExecutorID, agent_id: AgentID, data: bytes
    ) -> MaybeAwaitable:
        """A message from one of your executors (best effort, may be lost)."""

    def agent_lost(self, driver: Any, agent_id: AgentID) -> MaybeAwaitable:
        """The agent is unreachable or removed; its tasks' updates follow separately."""

    def executor_lost(
        self, driver: Any, executor_id: ExecutorID, agent_id: AgentID, status: int | None
    ) -> MaybeAwaitable:
        """A custom executor exited (`status` is its wait status)."""

    def error(self, driver: Any, message: str) -> MaybeAwaitable:
        """The master refused the framework (ERROR event) or a fatal subscribe error.

        The client stops after this: it does not reconnect (an ERROR means "failed over" or
        "removed", and reconnecting would fight the newer scheduler)."""
        log.error("scheduler error: %s", message)

    def heartbeat(self, driver: Any) -> MaybeAwaitable:
        """The master's periodic HEARTBEAT (every `heartbeat_interval_seconds`)."""


def callback_for(
    scheduler: Scheduler, driver: Any, event: Event, *, first_subscription: bool
) -> tuple[Any, tuple[Any, ...]] | None:
    """The bound callback and arguments an event maps to (None for events with no callback).

    Kept apart from the I/O so the mapping is testable without a master.
    """
    match event.type:
        case EventType.SUBSCRIBED:
            assert event.subscribed is not None
            sub = event.subscribed
            if first_subscription:
                return scheduler.registered, (driver, sub.framework_id, sub.master_info)
            return scheduler.reregistered, (driver, sub.master_info)
        case EventType.OFFERS:
            assert event.offers is not None
            return scheduler.resource_offers, (driver, event.offers.offers)
        case EventType.INVERSE_OFFERS:
            assert event.inverse_offers is not None
            return scheduler.inverse_offers, (driver, event.inverse_offers.inverse_offers)
        case EventType.RESCIND:
            assert event.rescind is not None
            return scheduler.offer_rescinded, (driver, event.rescind.offer_id)
        case EventType.RESCIND_INVERSE_OFFER:
            assert event.rescind_inverse_offer is not None
            return scheduler.inverse_offer_rescinded, (
                driver,
                event.rescind_inverse_offer.inverse_offer_id,
            )
        case EventType.UPDATE:
            assert event.update is not None
            return scheduler.status_update, (driver, event.update.status)
        case EventType.UPDATE_OPERATION_STATUS:
            assert event.update_operation_status is not None
            return scheduler.operation_status_update, (driver, event.update_operation_status.status)
        case EventType.MESSAGE:
            assert event.message is not None
            msg = event.message
            return scheduler.framework_message, (driver, msg.executor_id, msg.agent_id, msg.data)
        case EventType.FAILURE:
            assert event.failure is not None
            failure = event.failure
            if failure.executor_id is not None and failure.agent_id is not None:
                return scheduler.executor_lost, (
                    driver,
                    failure.executor_id,
                    failure.agent_id,
                    failure.status,
                )
            if failure.agent_id is not None:
                return scheduler.agent_lost, (driver, failure.agent_id)
            return None
        case EventType.ERROR:
            assert event.error is not None
            return scheduler.error, (driver, event.error.message)
        case EventType.HEARTBEAT:
            return scheduler.heartbeat, (driver,)
        case _:
            return None
