"""Standalone election: a single master is always the leader; its detector knows it statically."""

from __future__ import annotations

from mezzo.election.base import (
    Contender,
    Detector,
    LeaderInfo,
    Payload,
    decode_master_info,
    encode_master_info,
)


class StandaloneContender(Contender):
    """Elected as soon as it contends (term 1); loses leadership only by withdrawing."""

    def __init__(self, payload: Payload | None = None) -> None:
        super().__init__()
        self.payload = None if payload is None else encode_master_info(payload)

    def contend(self) -> None:
        self._set_elected()

    def withdraw(self) -> None:
        self._set_lost("withdrawn")


def leader_from_address(address: str) -> LeaderInfo:
    """A LeaderInfo for a fixed ``host:port`` (default port 5050, as Mesos and pymesos do);
    ``https://host:port`` says the master serves TLS."""
    scheme, sep, rest = address.partition("://")
    address = rest.rstrip("/") if sep else address
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "5050"
    info = {
        "hostname": host,
        "port": int(port),
        "address": {"hostname": host, "ip": host, "port": int(port)},
    }
    if scheme == "https":
        info["scheme"] = "https"
    return LeaderInfo(name="standalone", sequence=None, info=info, raw=encode_master_info(info))


class StandaloneDetector(Detector):
    """Reports a fixed leader (given as MasterInfo, or ``host:port``), changeable with ``appoint``."""

    def __init__(self, leader: Payload | str | LeaderInfo | None = None) -> None:
        super().__init__()
        self._initial = leader

    def appoint(self, leader: Payload | str | LeaderInfo | None) -> None:
        if leader is None or isinstance(leader, LeaderInfo):
            self._set_leader(leader)
        elif isinstance(leader, str):
            self._set_leader(leader_from_address(leader))
        else:
            raw = encode_master_info(leader)
            self._set_leader(LeaderInfo("standalone", None, decode_master_info(raw), raw))

    def start(self) -> None:
        if self._initial is not None:
            self.appoint(self._initial)
            self._initial = None

    def close(self) -> None:
        pass
