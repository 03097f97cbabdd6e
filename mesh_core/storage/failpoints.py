"""Named points inside a publish where a fault-injection test can kill the process.

`MESH_FAILPOINT=<name>` in the environment makes the process SIGKILL itself when it
reaches that point, so tests can crash a publish between any two of its steps.
Read at each call, never at import; unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "MESH_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
