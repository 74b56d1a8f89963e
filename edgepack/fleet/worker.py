"""One device of a fleet: a Ray node that carries its hardware profile.

A device joins the user's Ray cluster (`ray start --address HEAD`) with
- custom resources: `edgepack-device` (1 on every device, so a task can ask for "any device")
  and `edgepack-device-<name>` (1: one bench at a time on that device, and a way to address it);
- node labels under `edgepack.dev/`: device name, preset, CPU architecture, GPU, memory and
  the edgepack version, so tasks can be placed by what a device is (Ray's label selectors).

Security: the head address is always explicit, nodes bind to the address they are told
(127.0.0.1 unless `--bind` says otherwise), and Ray's token authentication is switched on
(`RAY_AUTH_MODE=token`; every node needs the head's token, see README).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

from edgepack import __version__
from edgepack.errors import FleetError

DEVICE_RESOURCE = "edgepack-device"
LABEL_PREFIX = "edgepack.dev/"
DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 6379
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class DeviceSpec:
    """What a device tells the cluster about itself (all of it ends up in resources and labels)."""

    name: str
    preset: str | None
    arch: str | None
    cpu: str | None
    gpu: str | None
    memory_bytes: int | None
    vram_bytes: int | None
    version: str = __version__

    def to_dict(self) -> dict:
        return asdict(self)


def check_device_name(name: str) -> str:
    if not _LABEL_VALUE.fullmatch(name or ""):
        raise FleetError(f"device name {name!r}: use 1-63 letters, digits, '-', '_' or '.', starting and ending "
                         "with a letter or digit (e.g. orin-1)")
    return name


def _label_value(text: str | None) -> str:
    """Labels are DNS-like: squeeze anything else into '-' and trim to 63 characters."""
    if not text:
        return "none"
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-_.")[:63].strip("-_.")
    return value or "none"


def device_spec(name: str, profile=None, preset: str | None = None) -> DeviceSpec:
    """The spec of `profile` (default: this machine) under `name`."""
    from edgepack.machine.profile import this_machine

    check_device_name(name)
    profile = profile or this_machine(measure_bandwidth=False)
    gpu = profile.gpu
    return DeviceSpec(name=name, preset=preset, arch=profile.cpu.arch, cpu=profile.cpu.model,
                      gpu=gpu.name if gpu else None, memory_bytes=profile.memory.total_bytes,
                      vram_bytes=gpu.memory_total_bytes if gpu else None)


def device_resource(name: str) -> str:
    return f"{DEVICE_RESOURCE}-{name}"


def node_resources(spec: DeviceSpec) -> dict[str, float]:
    return {DEVICE_RESOURCE: 1.0, device_resource(spec.name): 1.0}


def node_labels(spec: DeviceSpec) -> dict[str, str]:
    gib = (lambda n: str(round(n / 2**30)) if n else "0")
    return {
        LABEL_PREFIX + "device": spec.name,
        LABEL_PREFIX + "preset": _label_value(spec.preset),
        LABEL_PREFIX + "arch": _label_value(spec.arch),
        LABEL_PREFIX + "gpu": _label_value(spec.gpu),
        LABEL_PREFIX + "memory-gib": gib(spec.memory_bytes),
        LABEL_PREFIX + "vram-gib": gib(spec.vram_bytes),
        LABEL_PREFIX + "version": _label_value(spec.version),
    }


def spec_from_labels(labels: dict[str, str]) -> DeviceSpec | None:
    """The (coarse) spec back from a node's labels; None for a node that is not an edgepack device."""
    get = (lambda key: labels.get(LABEL_PREFIX + key))
    name = get("device")
    if not name:
        return None
    none = (lambda v: None if v in (None, "none") else v)
    gib = (lambda v: int(v) * 2**30 if v and v.isdigit() and v != "0" else None)
    return DeviceSpec(name=name, preset=none(get("preset")), arch=none(get("arch")), cpu=None, gpu=none(get("gpu")),
                      memory_bytes=gib(get("memory-gib")), vram_bytes=gib(get("vram-gib")),
                      version=get("version") or "unknown")


def check_address(address: str | None, what: str = "--head") -> str:
    """host:port, given explicitly: edgepack never guesses a cluster (no 'auto', no default)."""
    if not address or address.strip().lower() == "auto":
        raise FleetError(f"{what} needs the head's address as HOST:PORT (e.g. 192.168.1.10:{DEFAULT_PORT}); "
                         "edgepack does not look for clusters by itself")
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FleetError(f"{what} {address!r} is not HOST:PORT (e.g. 192.168.1.10:{DEFAULT_PORT})")
    return address.strip()


def _ray_cli() -> str:
    found = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if not found:
        raise FleetError("Ray is not installed; install the fleet extra: pip install 'edgepack[fleet]'")
    return found


def ray_environment(auth: bool = True) -> dict[str, str]:
    """The environment for Ray's processes: token authentication on unless switched off explicitly."""
    env = dict(os.environ)
    if auth:
        env.setdefault("RAY_AUTH_MODE", "token")
    else:
        env["RAY_AUTH_MODE"] = "disabled"  # Ray itself would otherwise turn it on for a new head
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the user's network
    return env


def worker_command(head: str, spec: DeviceSpec, *, bind: str = DEFAULT_BIND, num_cpus: int | None = None,
                   block: bool = True) -> list[str]:
    """`ray start` for a device joining `head` (what `edgepack worker` runs)."""
    import json

    cmd = [_ray_cli(), "start", "--address", check_address(head), "--node-ip-address", bind,
           "--resources", json.dumps(node_resources(spec)),
           "--labels", ",".join(f"{k}={v}" for k, v in node_labels(spec).items()),
           "--disable-usage-stats"]
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    if block:
        cmd.append("--block")
    return cmd


def head_command(*, bind: str = DEFAULT_BIND, port: int = DEFAULT_PORT, spec: DeviceSpec | None = None,
                 block: bool = False) -> list[str]:
    """`ray start --head` bound to one address, without the dashboard; a device too when `spec` is given."""
    cmd = [_ray_cli(), "start", "--head", "--node-ip-address", bind, "--port", str(port),
           "--include-dashboard=false", "--disable-usage-stats"]
    if spec is None:
        cmd += ["--num-cpus", "0"]  # a coordinator only: tasks go to devices
    else:
        import json

        cmd += ["--resources", json.dumps(node_resources(spec)),
                "--labels", ",".join(f"{k}={v}" for k, v in node_labels(spec).items())]
    if block:
        cmd.append("--block")
    return cmd


def auth_token_available(env: dict | None = None) -> bool:
    """Where Ray looks for its token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_TOKEN"):
        return True
    home = env.get("HOME") or os.path.expanduser("~")
    path = env.get("RAY_AUTH_TOKEN_PATH") or os.path.join(home, ".ray", "auth_token")
    return os.path.isfile(path) and os.path.getsize(path) > 0


def run_ray(cmd: list[str], *, auth: bool = True) -> int:
    """Run a `ray start` command in the foreground (Ctrl-C stops the node); its exit code.

    A head with authentication gets a token from Ray (`ray get-auth-token --generate`, saved to
    ~/.ray/auth_token) when it has none; a worker without one is told where to put the head's."""
    env = ray_environment(auth)
    token_mode = env.get("RAY_AUTH_MODE", "").lower() == "token"
    if token_mode and not auth_token_available(env):
        if "--head" not in cmd:
            raise FleetError("the fleet uses Ray's token authentication but this machine has no token: copy the "
                             "head's ~/.ray/auth_token here or set RAY_AUTH_TOKEN")
        subprocess.run([_ray_cli(), "get-auth-token", "--generate"], env=env, stdout=subprocess.DEVNULL, check=True)
    try:
        return subprocess.run(cmd, env=env).returncode
    except KeyboardInterrupt:
        return 130


def join(head: str, name: str, *, profile=None, preset: str | None = None, bind: str = DEFAULT_BIND,
         num_cpus: int | None = None, auth: bool = True) -> int:
    """Join the cluster at `head` as device `name` and serve until stopped."""
    spec = device_spec(name, profile, preset)
    return run_ray(worker_command(head, spec, bind=bind, num_cpus=num_cpus), auth=auth)


__all__ = ["DEVICE_RESOURCE", "DeviceSpec", "LABEL_PREFIX", "auth_token_available", "check_address", "check_device_name", "device_resource",
           "device_spec", "head_command", "join", "node_labels", "node_resources", "ray_environment",
           "run_ray", "spec_from_labels", "worker_command"]
