"""`plan --fleet`: which quant fits which device, each device's profile measured on the device."""

from __future__ import annotations

from pathlib import Path

from edgepack.fleet.cluster import connect, import_ray, select_devices
from edgepack.fleet.tasks import device_profile, remote
from edgepack.fleet.worker import device_resource


def fleet_profiles(address: str, devices: str | None = None) -> dict:
    """name -> MachineProfile: the preset a device announced, else the profile it measures of itself."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from edgepack.machine.devices import resolve_target
    from edgepack.machine.profile import MachineProfile

    connect(address)
    ray = import_ray()
    chosen = select_devices(devices)
    tasks = {d.name: remote(device_profile).options(
        num_cpus=0, resources={device_resource(d.name): 0.001},
        scheduling_strategy=NodeAffinitySchedulingStrategy(d.node_id, soft=False)).remote()
        for d in chosen if not d.spec.preset}
    profiles = {d.name: resolve_target(d.spec.preset) for d in chosen if d.spec.preset}
    for name, task in tasks.items():
        profiles[name] = MachineProfile.from_dict(ray.get(task), origin=f"device {name}")
    return {name: profiles[name] for name in sorted(profiles)}


def plan_fleet(model: str | Path, address: str, *, devices: str | None = None, ctx: int | None = None,
               kv_type: str | None = None) -> dict:
    """device name -> plan_bundle (a bundle) or plan_deployment (a GGUF) result for that device."""
    from edgepack.machine.plan import plan_bundle, plan_deployment

    model = Path(model)
    plans = {}
    for name, profile in fleet_profiles(address, devices).items():
        profile.name = name
        plans[name] = (plan_bundle(model, profile, ctx, kv_type=kv_type) if model.is_dir()
                       else plan_deployment(model, profile, ctx, kv_type=kv_type))
    return plans


__all__ = ["fleet_profiles", "plan_fleet"]
