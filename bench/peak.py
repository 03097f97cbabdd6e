"""Run a command and report its peak resident memory: `python bench/peak.py CMD ...`.

Prints `bench-peak-kb N` to stderr after the command's own output; exits with its code. With
BENCH_RSS_CAP_MB set, a command whose processes together hold more than that is stopped (its
process group killed), and `bench-capped MB` is printed: a benchmark that would exhaust a shared
machine's memory reports that it went past the cap instead."""

import os
import signal
import subprocess
import sys
import threading
import time

CAP_MB = float(os.environ.get("BENCH_RSS_CAP_MB") or 0)


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


child = subprocess.Popen(sys.argv[1:], start_new_session=bool(CAP_MB))
capped = []


def watch() -> None:
    while child.poll() is None:
        rss = tree_rss_kb(child.pid)
        if rss > CAP_MB * 1024:
            capped.append(rss)
            os.killpg(child.pid, signal.SIGKILL)
            return
        time.sleep(0.2)


if CAP_MB:
    threading.Thread(target=watch, daemon=True).start()
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\nbench-peak-kb {max([usage.ru_maxrss, *capped])}\n")
if capped:
    sys.stderr.write(f"bench-capped {CAP_MB:.0f}\n")
    sys.exit(0)
sys.exit(os.waitstatus_to_exitcode(status))
