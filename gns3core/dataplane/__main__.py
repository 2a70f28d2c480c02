"""``python -m gns3core.dataplane CONTROL_FD`` (or ``--shared MASTER_FD``): the worker process of process bridges
(started by the server)."""

from .worker import main

main()
