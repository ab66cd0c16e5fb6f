"""The role tree: hierarchical ordering of roles for the allocator.

Roles are `/`-separated paths; `eng/web` and `eng/db` are children of `eng`. Every node that has
children owns a sorter over them, and a node's client in its parent's sorter carries the whole
subtree's allocation — so what is allocated to `eng/web` is charged to `eng` as well, and `eng`
competes with its siblings with everything below it.

A role that has children *and* is itself used (frameworks subscribe to `eng` directly) is
represented inside its own sorter by a virtual leaf `eng/.` holding only the direct allocation,
so it competes fairly with its children (Apache Mesos does the same).

Iteration yields the tracked roles depth-first, each node's children in its sorter's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from mezzo.master.allocator.sorter.base import (
    Quantities,
    Sorter,
    add_quantities,
    subtract_quantities,
)

SELF = "/."  # suffix of a node's virtual leaf in its own sorter


class _Node:
    __slots__ = ("children", "direct", "is_role", "name", "parent", "sorter", "subtree")

    def __init__(self, name: str, parent: _Node | None) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.sorter: Sorter | None = None  # present exactly when the node has children
        self.is_role = False  # tracked by the allocator (frameworks or allocations)
        # Allocated to exactly this role; maintained only while the node has children (for a
        # leaf it equals `subtree`, and one dict update less per allocation matters).
        self.direct: Quantities = {}
        self.subtree: Quantities = {}  # allocated to this role and all its descendants


class RoleTree:
    """Roles ordered hierarchically; `make_sorter()` builds the sorter of each inner node."""

    def __init__(self, make_sorter: Callable[[], Sorter]) -> None:
        self._make_sorter = make_sorter
        self._root = _Node("", None)
        self._root.sorter = make_sorter()
        self._nodes: dict[str, _Node] = {}
        self._weights: dict[str, float] = {}

    # -- membership --------------------------------------------------------------------------
    def __contains__(self, role: object) -> bool:
        node = self._nodes.get(role) if isinstance(role, str) else None
        return node is not None and node.is_role

    def roles(self) -> list[str]:
        return [name for name, node in self._nodes.items() if node.is_role]

    def nodes(self) -> list[str]:
        """Every node: tracked roles and the inner nodes above them (`eng` for `eng/web`)."""
        return list(self._nodes)

    def add_role(self, role: str) -> None:
        """Track `role` (idempotent), creating its ancestors as inner nodes."""
        self._node(role).is_role = True

    def remove_role(self, role: str) -> None:
        """Stop tracking `role`; nodes with no role, children or allocation are pruned."""
        node = self._nodes.get(role)
        if node is None:
            return
        node.is_role = False
        self._prune(node)

    def _node(self, role: str) -> _Node:
        node = self._nodes.get(role)
        if node is not None:
            return node
        slash = role.rfind("/")
        parent = self._root if slash < 0 else self._node(role[:slash])
        node = _Node(role, parent)
        if parent.sorter is None:
            # The parent becomes an inner node: its direct allocation moves to a virtual leaf.
            parent.sorter = self._make_sorter()
            parent.sorter.add(parent.name + SELF)
            parent.direct = dict(parent.subtree)
            if parent.direct:
                parent.sorter.allocated(parent.name + SELF, parent.direct)
        parent.children[role] = node
        parent.sorter.add(role, weight=self._weights.get(role, 1.0))
        self._nodes[role] = node
        return node

    def _prune(self, node: _Node) -> None:
        while node is not self._root and not node.is_role and not node.children:
            if node.subtree:
                return
            parent = node.parent
            assert parent is not None and parent.sorter is not None
            parent.sorter.remove(node.name)
            del parent.children[node.name]
            del self._nodes[node.name]
            if not parent.children and parent is not self._root:
                parent.sorter = None  # back to a leaf; `direct` still holds its allocation
            node = parent

    # -- weights -----------------------------------------------------------------------------
    def update_weight(self, role: str, weight: float) -> None:
        self._weights[role] = weight
        node = self._nodes.get(role)
        if node is not None:
            assert node.parent is not None and node.parent.sorter is not None
            node.parent.sorter.update_weight(role, weight)

    def weight(self, role: str) -> float:
        return self._weights.get(role, 1.0)

    # -- allocations -------------------------------------------------------------------------
    def allocated(self, role: str, quantities: Mapping[str, float]) -> None:
        """Charge `quantities` to `role` and to each of its ancestors."""
        node = self._node(role)
        if node.sorter is not None:
            add_quantities(node.direct, quantities)
            node.sorter.allocated(role + SELF, quantities)
        while node.parent is not None:
            add_quantities(node.subtree, quantities)
            node.parent.sorter.allocated(node.name, quantities)  # type: ignore[union-attr]
            node = node.parent

    def unallocated(self, role: str, quantities: Mapping[str, float]) -> None:
        node = self._nodes[role]
        if node.sorter is not None:
            subtract_quantities(node.direct, quantities)
            node.sorter.unallocated(role + SELF, quantities)
        start = node
        while node.parent is not None:
            subtract_quantities(node.subtree, quantities)
            node.parent.sorter.unallocated(node.name, quantities)  # type: ignore[union-attr]
            node = node.parent
        self._prune(start)

    def allocation(self, role: str) -> Quantities:
        """Everything allocated to `role` and its descendants."""
        node = self._nodes.get(role)
        return dict(node.subtree) if node is not None else {}

    def share(self, role: str) -> float:
        node = self._nodes[role]
        assert node.parent is not None and node.parent.sorter is not None
        return node.parent.sorter.share(role)

    # -- ordering ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        """Tracked roles, depth-first, siblings in their sorter's order."""
        return self._walk(self._root)

    def walk(self) -> RoleWalk:
        """The same order as iterating the tree, read lazily (see `RoleWalk`)."""
        return RoleWalk(self._root)

    def _walk(self, node: _Node) -> Iterator[str]:
        assert node.sorter is not None
        children = node.children
        for client in node.sorter.sort():
            child = children.get(client)
            if child is None:  # the virtual leaf of `node` itself
                if node.is_role:
                    yield node.name
            elif child.sorter is not None:
                yield from self._walk(child)
            elif child.is_role:
                yield child.name


class RoleWalk:
    """Iterates the tracked roles in the order `RoleTree.__iter__` gives, but reads each node's
    sorter lazily (`Sorter.walk_order`) instead of taking a snapshot of it when the walk reaches
    the node: an allocation cycle usually takes an agent with the first role or two, and
    snapshotting a sorter of many roles per agent cost more than the rest of the decision.

    A lazy order is only valid while nothing changes, so the caller calls `freeze()` before it
    charges or credits anything and then goes on walking: the nodes being walked keep the order
    they had (what the snapshots would have held), nodes not reached yet are read when reached,
    exactly as with `RoleTree.__iter__`.
    """

    __slots__ = ("_stack",)

    def __init__(self, root: _Node) -> None:
        self._stack: list[tuple[_Node, Iterator[str]]] = [
            (root, root.sorter.walk_order())  # type: ignore[union-attr]  # the root has one
        ]

    def __iter__(self) -> RoleWalk:
        return self

    def __next__(self) -> str:
        stack = self._stack
        while stack:
            node, order = stack[-1]
            children = node.children
            for client in order:
                child = children.get(client)
                if child is None:  # the virtual leaf of `node` itself
                    if node.is_role:
                        return node.name
                elif child.sorter is not None:
                    stack.append((child, child.sorter.walk_order()))
                    break
                elif child.is_role:
                    return child.name
            else:
                stack.pop()
        raise StopIteration

    def freeze(self) -> None:
        """Snapshot what is left of the nodes being walked (call before changing shares)."""
        self._stack = [(node, iter(list(order))) for node, order in self._stack]
