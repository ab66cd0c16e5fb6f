"""Id sources. Handlers never mint ids themselves: an IdSource is injected.

Formats follow Mesos: master id = UUID; framework `<master>-<NNNN>`; offer `<master>-O<n>`;
agent `<master>-S<n>`. Clients treat them as opaque.
"""

from __future__ import annotations

import random
import uuid


class IdSource:
    """Mints ids under one master id. Seeded sources are deterministic (tests, simulator)."""

    def __init__(self, master_id: str | None = None, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None
        self.master_id = master_id or self.uuid()
        self._frameworks = 0
        self._offers = 0
        self._agents = 0

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.uuid_bytes()))

    def uuid_bytes(self) -> bytes:
        """16 random bytes shaped as an RFC 4122 version-4 UUID."""
        if self._rng is None:
            return uuid.uuid4().bytes
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).bytes

    def framework_id(self) -> str:
        value = f"{self.master_id}-{self._frameworks:04d}"
        self._frameworks += 1
        return value

    def offer_id(self) -> str:
        value = f"{self.master_id}-O{self._offers}"
        self._offers += 1
        return value

    def agent_id(self) -> str:
        value = f"{self.master_id}-S{self._agents}"
        self._agents += 1
        return value
