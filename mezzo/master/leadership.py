"""A master's leadership: its phase, and where the leader is when it is not (spec §2.5).

The phase is one state machine, owned by the core (`MasterBase.phase`, changed only by
`elected()`, `recover()` and `fence()`):

    STANDBY ──elected──▶ RECOVERING ──registry recovered──▶ LEADING
       │                     │                                 │
       └─────────────────────┴──────── fence(reason) ──────────┴──▶ FENCED (terminal)

- STANDBY: not elected; the shell answers API calls with 307 to the leader (or 503).
- RECOVERING: elected, reading the registry; scheduler and agent calls are held (HA), other
  API calls answer 503 "Master has not finished recovery"; no timers run.
- LEADING: serving; timers and allocations run.
- FENCED: leadership lost (ZooKeeper session or node gone, the registry written by another
  master, a registry write failed): every stream is closed, nothing more is served or sent,
  and the process exits with status 1, as a Mesos master does.

`Leadership` answers the shell's other question, "if not me, where is the leader?", from the
election's detector (`host:port` for the `Location: //host:port/path` of a 307, or None while no
*other* leader is known -> 503 "No leader elected").
"""

from __future__ import annotations

from enum import StrEnum

from mezzo.election.base import Detector, LeaderInfo

NO_LEADER = "No leader elected"


class Phase(StrEnum):
    STANDBY = "STANDBY"
    RECOVERING = "RECOVERING"
    LEADING = "LEADING"
    FENCED = "FENCED"


# Phases in which this master is the elected leader (it answers for the cluster).
ELECTED = frozenset({Phase.RECOVERING, Phase.LEADING})


def leader_hostport(leader: LeaderInfo) -> str:
    """`host:port` of a leader as Mesos redirects to it: the advertised hostname, else the IP."""
    info = leader.info
    address = info.get("address") or {}
    host = info.get("hostname") or address.get("hostname") or address.get("ip")
    port = address.get("port") or info.get("port")
    return f"{host}:{port}"


class Leadership:
    """Where the leader is, for a master that contends in an election (HA)."""

    def __init__(self, detector: Detector | None, self_id: str) -> None:
        self.detector = detector
        self.self_id = self_id

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
