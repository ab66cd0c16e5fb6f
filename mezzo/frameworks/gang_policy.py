"""The gang framework's decision core: all-or-nothing allocation of N slots (MPI/Torque style).

An MPI job cannot start with some of its ranks: every rank must be running at once. Under
resource offers that means the framework *hoards*: it keeps offers it cannot use yet until the
offers it holds add up to N slots, then launches all N ranks together (the paper's §4.3 and §6.2
discuss this; Torque on Mesos behaved this way). Hoarding forever would starve the cluster, so
a gathering attempt that has not reached N within `hold_timeout` releases everything it holds
and tries again after `retry_delay`.

Life of a run:  GATHERING --(held slots >= N)--> RUNNING --(all N finished)--> next run
                GATHERING --(hold_timeout)--> COOLING --(retry_delay)--> GATHERING
                RUNNING --(a rank failed/lost)--> kill the others, COOLING, then the run again

No I/O and no clock reads: the shell feeds offers, status changes and `now`, and carries out
the returned `Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    GATHERING = "gathering"
    RUNNING = "running"
    COOLING = "cooling"
    DONE = "done"


@dataclass(frozen=True)
class HeldOffer:
    offer_id: str
    agent: str
    slots: int
    received_at: float


@dataclass
class Decision:
    """What the shell must do now. Launch assignments are (offer_id, ranks on that offer)."""

    launch: list[tuple[str, list[int]]] = field(default_factory=list)
    decline: list[str] = field(default_factory=list)
    kill: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.launch or self.decline or self.kill)


@dataclass
class RunRecord:
    run: int
    started_at: float
    finished_at: float | None = None
    ok: bool | None = None
    agents: dict[str, int] = field(default_factory=dict)  # agent -> ranks placed there
    gather_seconds: float = 0.0


class GangPlanner:
    """Decides when to hold, launch and release offers for `runs` gang runs of `size` ranks."""

    def __init__(
        self,
        size: int,
        runs: int,
        hold_timeout: float,
        retry_delay: float,
        now: float,
    ) -> None:
        if size < 1 or runs < 1:
            raise ValueError("a gang needs size >= 1 and runs >= 1")
        self.size = size
        self.runs = runs
        self.hold_timeout = hold_timeout
        self.retry_delay = retry_delay
        self.phase = Phase.GATHERING
        self.held: dict[str, HeldOffer] = {}
        self.gather_started = now
        self.cooling_until = 0.0
        self.current: RunRecord | None = None
        self.history: list[RunRecord] = []
        self.running_ranks: set[int] = set()
        self.finished_ranks: set[int] = set()
        self.releases = 0  # gathering attempts that timed out

    # ------------------------------------------------------------------ queries

    @property
    def held_slots(self) -> int:
        return sum(o.slots for o in self.held.values())

    @property
    def completed_runs(self) -> int:
        return sum(1 for r in self.history if r.ok)

    @property
    def failed_runs(self) -> int:
        return sum(1 for r in self.history if r.ok is False)

    @property
    def done(self) -> bool:
        return self.phase == Phase.DONE

    # ------------------------------------------------------------------ inputs

    def offered(self, offer_id: str, agent: str, slots: int, now: float) -> Decision:
        """A new offer with room for `slots` ranks. Held while gathering, else declined."""
        if self.phase != Phase.GATHERING or slots <= 0:
            return Decision(decline=[offer_id])
        self.held[offer_id] = HeldOffer(offer_id, agent, slots, now)
        return self.tick(now)

    def rescinded(self, offer_id: str) -> None:
        self.held.pop(offer_id, None)

    def tick(self, now: float) -> Decision:
        """Re-evaluate on a timer: launch when N slots are held, release on timeout."""
        if self.phase == Phase.COOLING and now >= self.cooling_until:
            self.phase = Phase.GATHERING
            self.gather_started = now
        if self.phase != Phase.GATHERING:
            return Decision()
        if self.held_slots >= self.size:
            return self._launch(now)
        if now - self.gather_started >= self.hold_timeout:
            # Give back what we hoarded so others can use it; try again later.
            self.releases += 1
            released = list(self.held)
            self.held.clear()
            self.phase = Phase.COOLING
            self.cooling_until = now + self.retry_delay
            return Decision(decline=released)
        return Decision()

    def rank_finished(self, rank: int, now: float) -> Decision:
        if self.phase != Phase.RUNNING or rank not in self.running_ranks:
            return Decision()
        self.running_ranks.discard(rank)
        self.finished_ranks.add(rank)
        if len(self.finished_ranks) == self.size:
            self._end_run(now, ok=True)
        return Decision()

    def rank_failed(self, rank: int, now: float) -> Decision:
        """One rank died: an MPI job cannot continue without it. Kill the rest and retry."""
        if self.phase != Phase.RUNNING or rank not in self.running_ranks:
            return Decision()
        self.running_ranks.discard(rank)
        survivors = sorted(self.running_ranks)
        self.running_ranks.clear()
        self._end_run(now, ok=False)
        return Decision(kill=survivors)

    # ------------------------------------------------------------------ internals

    def _launch(self, now: float) -> Decision:
        # Fill from the offers with the most room first: fewer agents per gang means less
        # cross-machine traffic for a real MPI job.
        offers = sorted(self.held.values(), key=lambda o: (-o.slots, o.offer_id))
        launch: list[tuple[str, list[int]]] = []
        decline: list[str] = []
        rank = 0
        run = RunRecord(
            run=len(self.history) + 1, started_at=now, gather_seconds=now - self.gather_started
        )
        for offer in offers:
            if rank >= self.size:
                decline.append(offer.offer_id)
                continue
            take = min(offer.slots, self.size - rank)
            ranks = list(range(rank, rank + take))
            rank += take
            launch.append((offer.offer_id, ranks))
            run.agents[offer.agent] = run.agents.get(offer.agent, 0) + take
        assert rank == self.size  # only called with held_slots >= size
        self.held.clear()
        self.phase = Phase.RUNNING
        self.current = run
        self.running_ranks = set(range(self.size))
        self.finished_ranks = set()
        return Decision(launch=launch, decline=decline)

    def _end_run(self, now: float, ok: bool) -> None:
        assert self.current is not None
        self.current.finished_at = now
        self.current.ok = ok
        self.history.append(self.current)
        self.current = None
        if self.completed_runs >= self.runs:
            self.phase = Phase.DONE
        elif ok:
            self.phase = Phase.GATHERING
            self.gather_started = now
        else:
            self.phase = Phase.COOLING
            self.cooling_until = now + self.retry_delay
