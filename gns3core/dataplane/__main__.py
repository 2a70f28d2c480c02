"""``python -m gns3core.dataplane CONTROL_FD``: the worker process of a process bridge (started by the server)."""

from .worker import main

main()
