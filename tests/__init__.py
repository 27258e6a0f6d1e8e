"""
The twisted_netlab tests (pytest and trial both run them).

Hypothesis keeps no example database in the checkout. Under CI (C{CI} set,
as C{.ci/run} runs) its searches are derandomized, so that a run is
reproducible and a landing is never decided by a lucky draw; the long random
searches are C{python -m tests.fuzz} (see README.rst).
"""

import os

from hypothesis import settings

settings.register_profile("netlab", database=None)
settings.register_profile("netlab-ci", database=None, derandomize=True)
settings.load_profile("netlab-ci" if os.environ.get("CI") else "netlab")
