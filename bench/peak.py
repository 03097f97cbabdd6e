"""Run a command and report its peak resident memory: `python bench/peak.py CMD ...`.

Prints `bench-peak-kb N` to stderr after the command's own output; exits with its code."""

import os
import subprocess
import sys

child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\nbench-peak-kb {usage.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
