"""Finding the devices of a fleet: connect to the head at an explicit address, list its nodes.

Everything here asks Ray (its global state: nodes, labels, resources); no discovery of our own.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from dataclasses import dataclass, field

from edgepack.errors import FleetError
from edgepack.fleet.worker import (DEVICE_RESOURCE, DeviceSpec, auth_token_available, check_address, device_resource,
                                   spec_from_labels)


def import_ray():
    try:
        import ray
    except ImportError:
        raise FleetError("Ray is not installed; install the fleet extra: pip install 'edgepack[fleet]'") from None
    return ray


@dataclass
class FleetDevice:
    """One device as the cluster sees it now."""

    name: str
    node_id: str
    address: str
    alive: bool
    busy: bool
    spec: DeviceSpec
    resources: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "node_id": self.node_id, "address": self.address, "alive": self.alive,
                "busy": self.busy, "spec": self.spec.to_dict(), "resources": self.resources}


def connect(address: str, *, auth: bool = True, what: str = "--fleet") -> None:
    """Connect this process to the cluster at `address` (HOST:PORT, never 'auto')."""
    address = check_address(address, what)
    ray = import_ray()
    if ray.is_initialized():
        return
    mode = os.environ.get("RAY_AUTH_MODE")
    if auth:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" and not auth_token_available():
        raise FleetError("the fleet uses Ray's token authentication but this machine has no token: copy the head's "
                         "~/.ray/auth_token here or set RAY_AUTH_TOKEN (RAY_AUTH_MODE=disabled switches it off)")
    if os.environ.get("RAY_AUTH_MODE") != mode:  # Ray read its settings at import: let it read them again
        from ray._raylet import Config

        Config.initialize("")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        with _loopback_kept(address) as node_ip:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False,
                     _node_ip_address=node_ip)
    except ConnectionError as exc:
        raise FleetError(f"cannot reach the Ray head at {address} ({exc}); start it with `edgepack fleet head` "
                         "and check the address and port") from None
    except Exception as exc:  # Ray's own errors: authentication, version mismatch
        raise FleetError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def _loopback_kept(address: str):
    """Ray turns a loopback address into this machine's LAN address (it expects heads to listen
    there), so a head bound to 127.0.0.1, edgepack's default, would be out of reach; Ray's own
    switch for single-machine clusters keeps loopback as it is while the driver connects, and
    the driver takes the head's loopback address as its own. Yields that address, or None."""
    import ipaddress

    from ray._private import ray_constants

    host = address.rpartition(":")[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        yield None
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        # this driver is on the head's machine: on 127.0.0.1 Ray finds its node by itself
        yield None if host in ("localhost", "127.0.0.1", "::1") else host
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _available_per_node() -> dict[str, dict]:
    ray = import_ray()
    try:  # Ray's state API without the dashboard: the GCS's own view
        return ray._private.state.state._available_resources_per_node()
    except Exception:
        return {}


def list_devices(*, include_dead: bool = True) -> list[FleetDevice]:
    """The edgepack devices of the connected cluster, live and (with include_dead) gone."""
    ray = import_ray()
    available = _available_per_node()
    devices: dict[str, FleetDevice] = {}
    for node in ray.nodes():
        spec = spec_from_labels(node.get("Labels") or {})
        if spec is None:
            continue
        alive = bool(node.get("Alive"))
        if not alive and not include_dead:
            continue
        node_id = node["NodeID"]
        free = available.get(node_id, {}).get(device_resource(spec.name))
        device = FleetDevice(name=spec.name, node_id=node_id, address=node.get("NodeManagerAddress", ""),
                             alive=alive, busy=alive and free is not None and free < 1.0, spec=spec,
                             resources={k: v for k, v in (node.get("Resources") or {}).items()
                                        if k in ("CPU", "GPU", "memory") or k.startswith(DEVICE_RESOURCE)})
        previous = devices.get(spec.name)
        if previous is None or (alive and not previous.alive):  # a device that re-joined: its live node
            devices[spec.name] = device
    return sorted(devices.values(), key=lambda d: d.name)


def select_devices(patterns: str | list[str] | None, devices: list[FleetDevice] | None = None) -> list[FleetDevice]:
    """Live devices matching comma-separated shell patterns (`'jetson-*,laptop-2'`); all when None."""
    devices = [d for d in (devices if devices is not None else list_devices()) if d.alive]
    if not devices:
        raise FleetError("the fleet has no live device; join one with `edgepack worker --head HOST:PORT --name NAME`")
    if patterns is None:
        return devices
    wanted = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns) if p.strip()]
    chosen = [d for d in devices if any(fnmatch.fnmatchcase(d.name, p) for p in wanted)]
    unmatched = [p for p in wanted if not any(fnmatch.fnmatchcase(d.name, p) for d in devices)]
    if unmatched:
        raise FleetError(f"--devices {unmatched[0]!r} matches no live device; the fleet has "
                         f"{', '.join(d.name for d in devices)} (see `edgepack fleet ls`)")
    return chosen


def node_alive(node_id: str) -> bool:
    ray = import_ray()
    return any(n["NodeID"] == node_id and n.get("Alive") for n in ray.nodes())


__all__ = ["FleetDevice", "connect", "import_ray", "list_devices", "node_alive", "select_devices"]
