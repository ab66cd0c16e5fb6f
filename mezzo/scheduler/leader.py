"""Finding the leading master for a scheduler: fixed addresses, redirects, or ZooKeeper.

A `--master` string takes one of three forms (the same as Mesos and pymesos):

- `host[:port]` or `http://host:port` — one master (port 5050 when omitted);
- `h1:5050,h2:5050` — several candidates; the client tries them in turn and follows the
  `307 Location` a non-leading master answers with. Its backoff grows once per *round* (every
  candidate failed in a row), not per candidate: after a failover the next candidate is tried
  promptly, and the new leader is reached within about one short delay per candidate rather
  than after a backoff grown by the candidates that failed before it;
- `zk://host:2181[,host:2181]/path` — the leader advertised in ZooKeeper (`json.info_*` nodes),
  followed through `mezzo.election`'s detector.

`MasterLocator` owns only the *which master* decision; the HTTP client reports what happened
(`redirected`, `failed`) and asks again (`leader`).
"""

from __future__ import annotations

import asyncio

from mezzo.core.errors import ConfigError
from mezzo.election.base import Detector, LeaderInfo
from mezzo.net.address import DEFAULT_MASTER_PORT, base_from_location, parse_master_address

__all__ = ["DEFAULT_MASTER_PORT", "MasterLocator", "base_from_location", "parse_master_address"]


def _scheme_of(info: LeaderInfo) -> str | None:
    """`https` when the leader advertises TLS; else None (this process's default)."""
    return "https" if info.scheme == "https" else None


def _base_of(info: LeaderInfo | None) -> str | None:
    """The base URL of an advertised leader; None when there is none or it is unusable."""
    if info is None:
        return None
    try:
        return parse_master_address(info.address, _scheme_of(info))
    except ConfigError:
        return None


class MasterLocator:
    """Which master to talk to next. Not thread-safe: used from the client's event loop."""

    def __init__(self, master: str, detector: Detector | None = None) -> None:
        self.master = master
        self._detector = detector
        self._owns_detector = False
        self._candidates: list[str] = []
        self._index = 0
        self._failed_in_a_row = 0  # attempts failed since the last subscription
        self._override: str | None = None  # where the last redirect pointed
        if detector is None and master.startswith("zk://"):
            # Imported lazily so that schedulers given host:port never load kazoo.
            from mezzo.election.factory import create_detector

            self._detector = create_detector(master)
            self._owns_detector = True
        if self._detector is None:
            self._candidates = [parse_master_address(m) for m in master.split(",") if m.strip()]
            if not self._candidates:
                raise ConfigError(f"no master address in {master!r}")

    @property
    def uses_detector(self) -> bool:
        return self._detector is not None

    def start(self) -> None:
        if self._detector is not None:
            self._detector.start()

    def close(self) -> None:
        if self._detector is not None and self._owns_detector:
            self._detector.close()

    async def leader(self) -> str:
        """The base URL to try next; with ZooKeeper, waits until some leader is advertised."""
        if self._override is not None:
            return self._override
        if self._detector is not None:
            info = await self._detector.detect()
            assert info is not None  # detect() without `previous` waits for a leader
            return parse_master_address(info.address, _scheme_of(info))
        return self._candidates[self._index]

    async def wait_for_change(self, current: str) -> None:
        """Return once the detector advertises a leader whose base URL is not `current` (a new
        leader was elected); without a detector there is nothing to wait for: never returns."""
        if self._detector is None:
            await asyncio.Event().wait()
        assert self._detector is not None
        info = self._detector.leader()
        while _base_of(info) in (None, current):
            info = await self._detector.detect(info)

    def redirected(self, location: str, current: str | None) -> str:
        """A master answered 307: the next attempt goes where it points."""
        self._override = base_from_location(location, current)
        return self._override

    def failed(self) -> bool:
        """The last attempt failed (unreachable, 503, stream lost): forget redirects and move
        on to the next candidate (for ZooKeeper, ask the detector again). True when a round
        has ended, i.e. the caller should back off further: always for ZooKeeper or a single
        master; for several candidates, once each of them has failed since the last
        subscription (or since the last round ended)."""
        self._override = None
        if len(self._candidates) < 2:
            return True
        self._index = (self._index + 1) % len(self._candidates)
        self._failed_in_a_row += 1
        return self._failed_in_a_row % len(self._candidates) == 0

    def subscribed(self) -> None:
        """A subscription succeeded: the next failure starts a new round."""
        self._failed_in_a_row = 0
