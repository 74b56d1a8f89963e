"""Stage 4: the machine (profile, device presets) and the deployment plan for it."""

from edgepack.machine.devices import resolve_target
from edgepack.machine.plan import plan_bundle, plan_deployment
from edgepack.machine.profile import MachineProfile, collect_profile, this_machine

__all__ = ["MachineProfile", "collect_profile", "plan_bundle", "plan_deployment", "resolve_target", "this_machine"]
