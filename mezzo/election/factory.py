"""Building contenders and detectors from flags (``--zk`` for masters, ``--master`` for agents)."""

from __future__ import annotations

from mezzo.election.base import Contender, Detector, Payload
from mezzo.election.standalone import StandaloneContender, StandaloneDetector


def create_contender(
    zk: str | None, payload: Payload, *, session_timeout: float = 10.0
) -> Contender:
    """A ZooKeeper contender when ``zk`` is a ``zk://`` URL, else a standalone one."""
    if not zk:
        return StandaloneContender(payload)
    # Imported here so that standalone masters never load kazoo.
    from mezzo.election.zookeeper import ZooKeeperContender

    return ZooKeeperContender(zk, payload, session_timeout=session_timeout)


def create_detector(master: str, *, session_timeout: float = 10.0) -> Detector:
    """``zk://hosts/path`` follows the election there; ``host[:port]`` is a fixed leader."""
    if master.startswith("zk://"):
        from mezzo.election.zookeeper import ZooKeeperDetector

        return ZooKeeperDetector(master, session_timeout=session_timeout)
    return StandaloneDetector(master)
