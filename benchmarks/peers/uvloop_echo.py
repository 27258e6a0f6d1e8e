"""
The stdlib asyncio echo of C{asyncio_echo.py} (the same C{Protocol}), on
uvloop's event loop instead of the default one (run as a script, so that
C{asyncio_echo} is found next to it).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from asyncio_echo import main  # type: ignore[import-not-found]

if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
