"""Leader election: contenders and detectors (standalone and ZooKeeper).

See ``base`` for the contracts and ``zookeeper`` for the Mesos ``json.info_`` scheme.
"""

from mezzo.core.zkurl import ZkUrl, parse_zk_url
from mezzo.election.base import (
    Contender,
    Detector,
    LeaderInfo,
    decode_master_info,
    encode_master_info,
)
from mezzo.election.factory import create_contender, create_detector
from mezzo.election.standalone import StandaloneContender, StandaloneDetector

__all__ = [
    "Contender",
    "Detector",
    "LeaderInfo",
    "StandaloneContender",
    "StandaloneDetector",
    "ZkUrl",
    "create_contender",
    "create_detector",
    "decode_master_info",
    "encode_master_info",
    "parse_zk_url",
]
