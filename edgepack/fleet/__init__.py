"""A fleet of devices on Ray (the optional extra `edgepack[fleet]`): devices join as Ray nodes with
their hardware profile (worker), are listed and chosen (cluster), and run edgepack's own engines as
Ray tasks (tasks) for `bench --fleet` (bench) and `build --fleet` (build). Importing this package
does not import Ray; the functions that need it say so when it is missing.
"""

from edgepack.fleet.bench import FleetBenchReport, fleet_bench
from edgepack.fleet.build import FleetBuildResult, fleet_build
from edgepack.fleet.cluster import FleetDevice, connect, list_devices, select_devices
from edgepack.fleet.worker import DeviceSpec, device_spec, head_command, join, node_labels, node_resources, worker_command

__all__ = ["DeviceSpec", "FleetBenchReport", "FleetBuildResult", "FleetDevice", "connect", "device_spec", "fleet_bench",
           "fleet_build", "head_command", "join", "list_devices", "node_labels", "node_resources", "select_devices",
           "worker_command"]
