"""What the HTTP shell needs to know about leader election (spec §2.5).

A master runs one `Contender` (standalone: always elected; ZooKeeper: the lowest
`json.info_` node) and, in HA mode, one `Detector` over the same election path, which tells a
non-leading master where the leader is. `Leadership` answers the two questions the shell asks
on every request: "am I the leader?" and "if not, where is it?" (`host:port` for the
`Location: //host:port/path` of a 307, or None while no *other* leader is known -> 503
"No leader elected").
"""

from __future__ import annotations

from mezzo.election.base import Contender, Detector, LeaderInfo

NO_LEADER = "No leader elected"


def leader_hostport(leader: LeaderInfo) -> str:
    """`host:port` of a leader as Mesos redirects to it: the advertised hostname, else the IP."""
    info = leader.info
    address = info.get("address") or {}
    host = info.get("hostname") or address.get("hostname") or address.get("ip")
    port = address.get("port") or info.get("port")
    return f"{host}:{port}"


class Leadership:
    """A master's view of the election: its own contender and (HA) a detector of the leader."""

    def __init__(self, contender: Contender, detector: Detector | None, self_id: str) -> None:
        self.contender = contender
        self.detector = detector
        self.self_id = self_id

    @property
    def is_leader(self) -> bool:
        return self.contender.is_leader

    def leader(self) -> str | None:
        """Where another, currently advertised leader is (`host:port`); None when unknown.

        Our own node is never an answer: right after losing leadership it may still be the
        lowest for a moment, and redirecting to ourselves would make clients loop.
        """
        if self.detector is None:
            return None
        leader = self.detector.leader()
        if leader is None or leader.id == self.self_id:
            return None
        return leader_hostport(leader)
