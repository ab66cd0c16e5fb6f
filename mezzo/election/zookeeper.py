"""ZooKeeper election, the Mesos scheme (docs/ha.md; spec §2.5, §13.1).

Each contender creates an ephemeral *sequential* znode ``<path>/json.info_`` (ZooKeeper appends a
10-digit sequence) whose data is the MasterInfo JSON. The leader is the ``json.info_*`` child with
the lowest sequence. Everyone watches the children of ``<path>``; other children (``log_replicas``
of the replicated log, a registry, legacy protobuf ``info_*`` nodes) are ignored. pymesos picks
the lexicographically smallest child name other than ``log_replicas``; zero-padded sequences make
that the same node.

Session handling (the part that keeps two masters from both leading):

- LOST (session expired or closed): the ephemeral node is gone, so leadership is lost *at once*.
  kazoo then opens a new session and the contender re-contends with a new node (a new term if
  elected again).
- SUSPENDED (connection dropped, session maybe alive): ZooKeeper cannot tell us whether the server
  has already expired the session and elected someone else. Giving up at once (Curator's strict
  policy) would make every ensemble-member failover depose the leader; never giving up would let a
  partitioned leader lead forever. We do what Mesos does, with a tighter bound: if the connection
  is not back within ``suspended_grace`` seconds (default: a quarter of the session timeout),
  leadership is reported lost. kazoo declares SUSPENDED after 2/3 of the session timeout without
  a reply, so the server cannot expire the session earlier than about 1/3 of the timeout after
  that; stepping down within 1/4 keeps the old leader from overlapping a new one (modulo clock
  drift). If the same session comes back afterwards, the node is still lowest and a new term
  starts.

Threads: kazoo calls state listeners on its connection thread, which must not block, so listeners
only flip flags and hand the ZooKeeper work to ``handler.spawn``. ZooKeeper calls of one contender
are serialised by a lock.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import WatchedEvent

from mezzo.core.errors import ValidationError
from mezzo.core.zkurl import ZkUrl, parse_zk_url
from mezzo.election.base import (
    Contender,
    Detector,
    LeaderInfo,
    Payload,
    decode_master_info,
    encode_master_info,
)

log = logging.getLogger(__name__)

NODE_PREFIX = "json.info_"
SEQUENCE_DIGITS = 10
DEFAULT_SESSION_TIMEOUT = 10.0
_TRANSIENT = (ConnectionLoss, SessionExpiredError, ConnectionClosedError)


def node_sequence(name: str) -> int | None:
    """The sequence of a ``json.info_NNNNNNNNNN`` child; None for every other child."""
    if not name.startswith(NODE_PREFIX):
        return None
    digits = name[len(NODE_PREFIX) :]
    if len(digits) != SEQUENCE_DIGITS or not digits.isdigit():
        return None
    return int(digits)


def leader_node(children: list[str]) -> str | None:
    """The leader among ``children``: the ``json.info_`` node with the lowest sequence."""
    candidates = [(seq, name) for name in children if (seq := node_sequence(name)) is not None]
    return min(candidates)[1] if candidates else None


def _make_client(url: ZkUrl, session_timeout: float) -> KazooClient:
    auth = [("digest", f"{url.auth[0]}:{url.auth[1]}")] if url.auth else None
    return KazooClient(hosts=url.hosts, timeout=session_timeout, auth_data=auth)


class _ZkParticipant:
    """Client ownership and the spawn-on-state-change plumbing shared by contender and detector."""

    def __init__(
        self, url: str | ZkUrl, client: KazooClient | None, session_timeout: float
    ) -> None:
        self.url = url if isinstance(url, ZkUrl) else parse_zk_url(url)
        self.path = self.url.path
        self.session_timeout = session_timeout
        self._owns_client = client is None
        self.client: KazooClient = client or _make_client(self.url, session_timeout)
        self._op = threading.RLock()  # serialises this participant's ZooKeeper calls
        self._active = False
        self._listening = False

    def _begin(self) -> bool:
        """Start listening and connecting; False if already active."""
        with self._op:
            if self._active:
                return False
            self._active = True
        if not self._listening:
            self.client.add_listener(self._on_state)
            self._listening = True
        if self._owns_client and self.client.state == KazooState.LOST and not self.client.connected:
            # Non-blocking: the CONNECTED transition drives the first round.
            self.client.start_async()
        if self.client.connected:
            self._spawn()
        return True

    def _end(self) -> None:
        if self._listening:
            self.client.remove_listener(self._on_state)
            self._listening = False
        if self._owns_client:
            try:
                self.client.stop()
            finally:
                self.client.close()

    def _spawn(self) -> None:
        self.client.handler.spawn(self._round)

    def _on_watch(self, event: WatchedEvent) -> None:
        self._spawn()

    def _on_state(self, state: str) -> None:
        raise NotImplementedError

    def _round(self) -> None:
        raise NotImplementedError


class ZooKeeperContender(_ZkParticipant, Contender):
    """Contends under ``url``'s path with the MasterInfo ``payload``."""

    def __init__(
        self,
        url: str | ZkUrl,
        payload: Payload,
        *,
        client: KazooClient | None = None,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        suspended_grace: float | None = None,
    ) -> None:
        Contender.__init__(self)
        _ZkParticipant.__init__(self, url, client, session_timeout)
        self.data = encode_master_info(payload)
        self.suspended_grace = session_timeout / 4 if suspended_grace is None else suspended_grace
        self._node: str | None = None  # our child's name, valid in session self._node_session
        self._node_session: int | None = None
        self._grace_timer: threading.Timer | None = None

    @property
    def node(self) -> str | None:
        """Our ``json.info_NNNNNNNNNN`` child name in the current session, if any."""
        return self._node

    def contend(self) -> None:
        self._begin()

    def withdraw(self) -> None:
        with self._op:
            was_active, self._active = self._active, False
            self._cancel_grace()
            node, self._node = self._node, None
            if node is not None and self.client.connected:
                try:
                    self.client.delete(f"{self.path}/{node}")
                except (NoNodeError, *_TRANSIENT):
                    pass  # gone already, or the session ends with the client anyway
        self._set_lost("withdrawn")
        if was_active:
            self._end()

    # ---- session state (kazoo connection thread: never block here) -----------------------

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._cancel_grace()
            self._set_lost("ZooKeeper session expired or closed")
        elif state == KazooState.SUSPENDED:
            if self.is_leader:
                self._start_grace()
        elif state == KazooState.CONNECTED:
            self._cancel_grace()
            if self._active:
                self._spawn()

    def _start_grace(self) -> None:
        self._cancel_grace()
        timer = threading.Timer(self.suspended_grace, self._grace_expired)
        timer.daemon = True
        self._grace_timer = timer
        timer.start()

    def _cancel_grace(self) -> None:
        timer, self._grace_timer = self._grace_timer, None
        if timer is not None:
            timer.cancel()

    def _grace_expired(self) -> None:
        if self.client.state != KazooState.CONNECTED:
            self._set_lost(f"disconnected from ZooKeeper for more than {self.suspended_grace:.1f}s")

    # ---- the ZooKeeper work (spawned threads) ------------------------------------------

    def _round(self) -> None:
        with self._op:
            if not self._active or not self.client.connected:
                return
            try:
                self._ensure_node()
                self._check()
            except _TRANSIENT as e:
                log.info("contender round interrupted (%r); retried on reconnect", e)
            except KazooException:
                log.exception("contender round failed under %s", self.path)

    def _session_id(self) -> int | None:
        client_id = self.client.client_id
        return None if client_id is None else int(client_id[0])

    def _ensure_node(self) -> None:
        session = self._session_id()
        if self._node is not None and self._node_session == session:
            return
        self._node = None
        # A create that failed with ConnectionLoss may still have happened: adopt a node our
        # session owns instead of creating a second one (which would sit behind it forever).
        self.client.ensure_path(self.path)
        for name in self.client.get_children(self.path):
            if node_sequence(name) is None:
                continue
            stat = self.client.exists(f"{self.path}/{name}")
            if stat is not None and stat.ephemeralOwner == session:
                self._node, self._node_session = name, session
                return
        created = self.client.create(
            f"{self.path}/{NODE_PREFIX}", self.data, ephemeral=True, sequence=True
        )
        self._node, self._node_session = created.rsplit("/", 1)[1], session
        log.info("contending as %s/%s", self.path, self._node)

    def _check(self) -> None:
        children = self.client.get_children(self.path, watch=self._on_watch)
        if self._node not in children:
            # Deleted behind our back (operator, or a session change we have not seen yet).
            self._node = None
            self._set_lost("our election node disappeared")
            self._spawn()  # re-contend with a fresh node
            return
        if leader_node(children) == self._node:
            self._set_elected()
        else:
            self._set_lost("a lower election node exists")


class ZooKeeperDetector(_ZkParticipant, Detector):
    """Follows the leader under ``url``'s path; ``leader()`` is None while none is known."""

    def __init__(
        self,
        url: str | ZkUrl,
        *,
        client: KazooClient | None = None,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
    ) -> None:
        Detector.__init__(self)
        _ZkParticipant.__init__(self, url, client, session_timeout)

    def start(self) -> None:
        self._begin()

    def close(self) -> None:
        with self._op:
            was_active, self._active = self._active, False
        if was_active:
            self._end()

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            # Watches died with the session: the leader is unknown until we look again.
            self._set_leader(None)
        elif state == KazooState.CONNECTED and self._active:
            self._spawn()
        # SUSPENDED: keep the last known leader; ZooKeeper re-arms watches on reconnection.

    def _round(self) -> None:
        with self._op:
            if not self._active or not self.client.connected:
                return
            try:
                self._set_leader(self._read_leader())
            except _TRANSIENT as e:
                log.info("detector round interrupted (%r); retried on reconnect", e)
            except KazooException:
                log.exception("detector round failed under %s", self.path)

    def _read_leader(self) -> LeaderInfo | None:
        while True:
            try:
                children = self.client.get_children(self.path, watch=self._on_watch)
            except NoNodeError:
                # No master has contended yet: wait for the path to be created.
                if self.client.exists(self.path, watch=self._on_watch) is None:
                    return None
                continue
            name = leader_node(children)
            if name is None:
                return None
            try:
                raw, _ = self.client.get(f"{self.path}/{name}")
            except NoNodeError:
                continue  # the leader just went away; the children watch has fired too
            try:
                info: dict[str, Any] = decode_master_info(raw)
            except ValidationError as e:
                log.error("leader node %s/%s holds unusable MasterInfo: %s", self.path, name, e)
                return None
            return LeaderInfo(name=name, sequence=node_sequence(name), info=info, raw=bytes(raw))


__all__ = [
    "NODE_PREFIX",
    "ZooKeeperContender",
    "ZooKeeperDetector",
    "leader_node",
    "node_sequence",
]
