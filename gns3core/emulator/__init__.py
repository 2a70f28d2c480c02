"""Building blocks for emulator plugins: VM and manager base classes, NIOs, process supervision, standard routes."""

from gns3core.emulator.manager import VMManager
from gns3core.emulator.nio import NIO, nio_from_json
from gns3core.emulator.process import ManagedProcess
from gns3core.emulator.routes import VMRoutes, vm_routes
from gns3core.emulator.vm import Adapter, BaseVM

__all__ = ["NIO", "Adapter", "BaseVM", "ManagedProcess", "VMManager", "VMRoutes", "nio_from_json", "vm_routes"]
