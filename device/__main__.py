"""The entry point, twice: `python -m edgebench.device` on the host, and agent.pyz's own
__main__.py (the archive carries this file at its top as well), hence the absolute import."""
import sys

from edgebench.device.agent.cli import main

sys.exit(main())
