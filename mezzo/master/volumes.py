"""Persistent volumes on the master (issue 14 §3): CREATE, DESTROY, GROW_VOLUME and
SHRINK_VOLUME, from frameworks (steps of an ACCEPT) and operators (CREATE_VOLUMES,
DESTROY_VOLUMES, GROW_VOLUME, SHRINK_VOLUME).

Owns their validation, with Mesos's messages (`src/master/validation.cpp`,
`validation::operation::validate(Create|Destroy|GrowVolume|ShrinkVolume)`), and their
authorization (ACL actions `create_volumes` on the volume's role, `destroy_volumes` on the
principal that created it, `resize_volumes` on the role). Everything after that — applying the
conversions to the master's view of the agent and the allocator, APPLY_OPERATION to the agent,
operation feedback, rescinding offers for operators — is the path every operation takes
(`mezzo.master.operations`). A volume is made of *reserved* disk only (static or dynamic
reservations); the agent creates its directory and checkpoints it, and the allocator offers it
back to its role like any reserved resource.

Differences from Mesos: GROW_VOLUME and SHRINK_VOLUME are applied speculatively like CREATE
(Mesos waits for the agent's OPERATION_FINISHED before the allocator sees the new size).
"""

from __future__ import annotations

from collections.abc import Callable

from mezzo.api.common import (
    Create,
    Destroy,
    FrameworkCapabilityType,
    GrowVolume,
    OfferOperation,
    OfferOperationType,
    Resource,
    Scalar,
    ShrinkVolume,
)
from mezzo.core.errors import ValidationError
from mezzo.master.operations import OperationCalls, OperationError, describe_agent, validated
from mezzo.master.records import AgentRecord, FrameworkRecord, has_capability
from mezzo.resources import ResourceItem, Resources
from mezzo.resources import volumes as vol
from mezzo.resources.conversions import Conversion
from mezzo.resources.disk import MOUNT, as_disk_key
from mezzo.resources.wire import items_from_wire

_T = OfferOperationType


def _resources(resources: list[Resource]) -> Resources:
    """`resource::validate` of validation.cpp: parse, then the DiskInfo rules."""
    try:
        parsed = Resources.from_wire(resources)
    except ValidationError as exc:
        raise OperationError(f"Invalid resources: {exc}") from None
    problem = vol.disk_info_problem(parsed)
    if problem is not None:
        raise OperationError(f"Invalid resources: Invalid DiskInfo: {problem}")
    return parsed


def _single_provider(resources: Resources) -> None:
    providers = {item.key.provider_id for item in resources}
    if len(providers) > 1:
        if None in providers:
            raise OperationError(
                "Invalid resources: Some resources have a resource provider and some do not")
        raise OperationError("Invalid resources: The resources have multiple resource providers: "
                             + ", ".join(sorted(p for p in providers if p)))


def _persistent(resources: Resources, prefix: str) -> None:
    problem = vol.persistent_volume_problem(resources)
    if problem is not None:
        raise OperationError(prefix + problem)


class VolumeCalls(OperationCalls):
    # ================================================================= validation

    def volume_conversions(
        self,
        operation: OfferOperation,
        principal: str | None,
        framework: FrameworkRecord | None,
        agent: AgentRecord,
    ) -> list[Conversion]:
        """Validate and authorize a volume operation; its conversions (resources as given,
        allocation info included) or OperationError (`; on agent ...` on validation errors,
        as Mesos appends it for frameworks; the operator path strips it)."""
        where = f"; on agent {describe_agent(agent)}"
        match operation.type:
            case _T.CREATE:
                create = operation.create
                if create is None:
                    raise OperationError("Expecting 'create' to be present")
                volumes = validated(
                    lambda: self.validate_create(create.volumes, agent, principal, framework),
                    where)
                self._authorize_volumes("create_volumes", "CREATE_VOLUME", principal, volumes,
                                        _role)
                return vol.create(volumes)
            case _T.DESTROY:
                destroy = operation.destroy
                if destroy is None:
                    raise OperationError("Expecting 'destroy' to be present")
                volumes = validated(lambda: self.validate_destroy(destroy.volumes, agent), where)
                self._authorize_volumes("destroy_volumes", "DESTROY_VOLUME", principal, volumes,
                                        _creator)
                if framework is not None:
                    self._rescind_offers_holding(agent, volumes.unallocate())
                return vol.destroy(volumes)
            case _T.GROW_VOLUME:
                grow = operation.grow_volume
                if grow is None:
                    raise OperationError("Expecting 'grow_volume' to be present")
                volume, addition = validated(
                    lambda: self.validate_grow(grow.volume, grow.addition, agent), where)
                self._authorize_volumes("resize_volumes", "RESIZE_VOLUME", principal, volume,
                                        _role)
                return vol.grow(volume, addition)
            case _T.SHRINK_VOLUME:
                shrink = operation.shrink_volume
                if shrink is None:
                    raise OperationError("Expecting 'shrink_volume' to be present")
                volume, subtract = validated(
                    lambda: self.validate_shrink(shrink.volume, shrink.subtract, agent), where)
                self._authorize_volumes("resize_volumes", "RESIZE_VOLUME", principal, volume,
                                        _role)
                return vol.shrink(volume, subtract)
        raise OperationError(f"Offer operation {operation.type} is not supported by this master")

    def _rescind_offers_holding(self, agent: AgentRecord, volumes: Resources) -> None:
        """As Mesos for a framework's DESTROY: offers of the agent that hold one of the
        volumes (shared volumes are offered to several frameworks) are rescinded."""
        for offer_id in sorted(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is None:
                continue
            held = offer.resources.unallocate()
            if any(held.contains(Resources([item])) for item in volumes):
                self.remove_offer(offer, rescind=True)

    def validate_create(
        self,
        wire: list[Resource],
        agent: AgentRecord,
        principal: str | None,
        framework: FrameworkRecord | None,
    ) -> Resources:
        """Mesos's `validate(Create)`: the volumes, as given."""
        volumes = _resources(wire)
        _single_provider(volumes)
        _persistent(volumes, "Not a persistent volume: ")
        problem = vol.unique_persistence_id_problem(
            [*agent.checkpointed, *items_from_wire(wire)])
        if problem is not None:
            raise OperationError(problem)
        for item in volumes:
            one = Resources([item])
            if framework is not None and item.key.shared and not has_capability(
                    framework.info, FrameworkCapabilityType.SHARED_RESOURCES):
                raise OperationError(
                    f"Create volume operation for '{one}' has been attempted by framework "
                    f"'{framework.id}' with no SHARED_RESOURCES capability")
            role = item.key.reservation_role
            if "/" in role and "HIERARCHICAL_ROLE" not in agent.capabilities:
                raise OperationError(
                    f"Volume {one} with reservation for hierarchical role '{role}' cannot be "
                    "created on an agent without HIERARCHICAL_ROLE capability")
            if len(item.key.reservations) > 1 and \
                    "RESERVATION_REFINEMENT" not in agent.capabilities:
                raise OperationError(
                    f"Volume {one} with reservation refinement cannot be created on an agent "
                    "without RESERVATION_REFINEMENT capability")
            if principal is not None:
                disk = vol.disk_of(item.key)
                owner = disk.persistence.principal if disk and disk.persistence else None
                if owner is None:
                    raise OperationError(
                        f"Create volume operation attempted by principal '{principal}', but "
                        "there is a volume in the operation with no principal set in "
                        "'disk.persistence'")
                if owner != principal:
                    raise OperationError(
                        f"Create volume operation attempted by authenticated principal "
                        f"'{principal}', which does not match a volume in the operation with "
                        f"principal '{owner}' set in 'disk.persistence'")
        if framework is not None:
            roles = set()
            for item in volumes:
                if item.key.allocation_role is None:
                    raise OperationError(
                        "Invalid volume resources: The resources are not allocated to a role")
                roles.add(item.key.allocation_role)
            if len(roles) > 1:
                first, second = sorted(roles)[:2]
                raise OperationError(
                    f"Invalid volume resources: The resources have multiple allocation roles "
                    f"('{second}' and '{first}') but only one allocation role is allowed")
        return volumes

    def validate_destroy(self, wire: list[Resource], agent: AgentRecord) -> Resources:
        """Mesos's `validate(Destroy)`: the volumes must be checkpointed on the agent and not
        in use by any task or executor (a shared volume may be in use)."""
        volumes = _resources(wire)
        plain = volumes.unallocate()
        _single_provider(plain)
        _persistent(plain, "Not a persistent volume: ")
        for item in plain:
            if item.key.provider_id is None and not agent.checkpointed.contains(Resources([item])):
                raise OperationError("Persistent volumes not found")
        used = self.agent_used_resources(agent).unallocate()
        for item in plain:
            if used.contains(Resources([item])):
                raise OperationError("Persistent volumes in use")
        return volumes

    def validate_grow(
        self, volume_wire: Resource, addition_wire: Resource, agent: AgentRecord
    ) -> tuple[Resources, Resources]:
        """Mesos's `validate(GrowVolume)`."""
        volume = _field_resource(volume_wire, "GrowVolume.volume")
        addition = _field_resource(addition_wire, "GrowVolume.addition")
        if addition.scalar(addition_wire.name) <= 0 or addition_wire.scalar is None:
            raise OperationError("The size of 'GrowVolume.addition' field must be greater than zero")
        if not volume:
            # A volume of no size (Mesos's Resources drop it and would grow nothing into a
            # volume): refused rather than half understood.
            raise OperationError("The size of 'GrowVolume.volume' field must be greater than zero")
        if volume_wire.provider_id is not None:
            raise OperationError("Growing a volume from a resource provider is not supported")
        problem = vol.persistent_volume_problem(volume)
        if problem is not None:
            raise OperationError(
                f"Invalid persistent volume in the 'GrowVolume.volume' field: {problem}")
        if volume_wire.shared is not None:
            raise OperationError("Growing a shared persistent volume is not supported")
        if len(vol.strip(volume) + addition) != 1:
            raise OperationError(
                "Incompatible resources in the 'GrowVolume.volume' and 'GrowVolume.addition' "
                "fields")
        if "RESIZE_VOLUME" not in agent.capabilities:
            raise OperationError(
                f"Volume {volume} cannot be grown on an agent without RESIZE_VOLUME capability")
        return volume, addition

    def validate_shrink(
        self, volume_wire: Resource, subtract: Scalar, agent: AgentRecord
    ) -> tuple[Resources, int]:
        """Mesos's `validate(ShrinkVolume)`; the volume and the amount in thousandths."""
        volume = _field_resource(volume_wire, "ShrinkVolume.volume")
        try:
            amount = vol.scalar_fixed(subtract.value) if subtract.value > 0 else 0
        except ValidationError:
            amount = 0
        if amount <= 0:
            raise OperationError("Value of 'ShrinkVolume.subtract' must be greater than zero")
        size = vol.scalar_fixed(volume_wire.scalar.value) if volume_wire.scalar else 0
        if size <= amount:
            raise OperationError(
                "Value of 'ShrinkVolume.subtract' must be smaller than the size of "
                "'ShrinkVolume.volume'")
        if volume_wire.provider_id is not None:
            raise OperationError("Shrinking a volume from a resource provider is not supported")
        (item,) = list(volume)
        disk = as_disk_key(item.key.disk)
        if disk is not None and disk.source_type == MOUNT:
            raise OperationError("Shrinking a volume on a MOUNT disk is not supported")
        problem = vol.persistent_volume_problem(volume)
        if problem is not None:
            raise OperationError(
                f"Invalid persistent volume in the 'ShrinkVolume.volume' field: {problem}")
        if volume_wire.shared is not None:
            raise OperationError("Shrinking a shared persistent volume is not supported")
        if "RESIZE_VOLUME" not in agent.capabilities:
            raise OperationError(
                f"Volume {volume} cannot be shrunk on an agent without RESIZE_VOLUME capability")
        return volume, amount

    def agent_used_resources(self, agent: AgentRecord) -> Resources:
        """What the tasks and executors on `agent` use (Mesos's `Slave::usedResources`)."""
        used = Resources()
        for task in agent.tasks.values():
            if not task.recovered:
                used = used + task.resources
        for framework in self.frameworks.values():
            for executor in framework.executors.get(agent.id, {}).values():
                used = used + executor.resources
        return used

    def _authorize_volumes(self, action: str, name: str, principal: str | None,
                           volumes: Resources, obj: Callable[[ResourceItem], str | None]) -> None:
        for item in volumes:
            if not self.authorize(action, principal, obj(item)):
                raise OperationError(
                    f"Principal '{principal or ''}' no authorized to perform action {name} on "
                    f"object {Resources([item]).unallocate()}", 403)

    # ================================================================= operators

    def create_volumes(self, agent_id: str, volumes: list[Resource], principal: str | None) -> None:
        """CREATE_VOLUMES: 202 once applied and sent; 400/403/409 as Mesos, nothing changed."""
        self.operator_operation(OfferOperation(type=_T.CREATE, create=Create(volumes=volumes)),
                                agent_id, principal)

    def destroy_volumes(self, agent_id: str, volumes: list[Resource], principal: str | None) -> None:
        self.operator_operation(
            OfferOperation(type=_T.DESTROY, destroy=Destroy(volumes=volumes)), agent_id, principal)

    def grow_volume(self, agent_id: str, volume: Resource, addition: Resource,
                    principal: str | None) -> None:
        self.operator_operation(OfferOperation(
            type=_T.GROW_VOLUME, grow_volume=GrowVolume(volume=volume, addition=addition)),
            agent_id, principal)

    def shrink_volume(self, agent_id: str, volume: Resource, subtract: Scalar,
                      principal: str | None) -> None:
        self.operator_operation(OfferOperation(
            type=_T.SHRINK_VOLUME, shrink_volume=ShrinkVolume(volume=volume, subtract=subtract)),
            agent_id, principal)


def _field_resource(wire: Resource, field: str) -> Resources:
    """The one resource of an operation's `field`, parsed (Mesos's wording if invalid)."""
    try:
        return Resources.from_wire([wire])
    except ValidationError as exc:
        raise OperationError(f"Invalid resource in the '{field}' field: {exc}") from None


def _role(item: ResourceItem) -> str | None:
    return item.key.reservation_role


def _creator(item: ResourceItem) -> str | None:
    disk = vol.disk_of(item.key)
    return disk.persistence.principal if disk is not None and disk.persistence else None
