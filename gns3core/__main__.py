"""`python -m gns3core` starts the server, like `gns3server`."""

import sys

from gns3core.cli import main

sys.exit(main())
