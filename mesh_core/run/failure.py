"""What a failed step says to a person: one text for the run summary and the owners' notification.

Mesh's own errors are written for operators (they name the product, the path and the fix) and
are shown as they are. Any other error is the product's own code failing: it is shown with its
type, its message and where it was raised in the domain's code, never a frame of Mesh, Dagster
or pandas, so `KeyError: 'pe_ratio'` says which line read the missing column.
"""

from __future__ import annotations

import os
import re
import sysconfig
from pathlib import Path

from mesh_core.errors import MeshError, plain_message

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)')


def error_chain(error) -> list:
    """A serialized error and its causes, outermost first."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    return chain


def failure_text(error) -> str:
    """Mesh's own error if the chain has one, else the error the product's code raised, with the
    file and line of its innermost frame in the domain's code; in plain text."""
    chain = error_chain(error)
    if not chain:
        return "unknown error"
    mesh = next((e for e in chain if e.cls_name in _mesh_errors()), None)
    if mesh is not None:  # Mesh's own errors are written for operators; the class path adds nothing.
        return plain_message(re.sub(r"^mesh_core\.errors\.\w+: ", "", mesh.message.strip()))
    # Dagster wraps the user's error in its own (DagsterExecutionStepExecutionError): skip the wrappers.
    raised = next((e for e in chain if not (e.cls_name or "").startswith("Dagster")), chain[-1])
    text = plain_message(raised.message.strip())
    where = next((frame for e in chain[chain.index(raised):] if (frame := _own_frame(e.stack or []))), None)
    return f"{text} (at {where})" if where else text


def _own_frame(stack: list[str]) -> str | None:
    """'file:line, in function' of the innermost frame of a stack that is the domain's code."""
    for entry in reversed(stack):
        found = _FRAME.search(entry)
        if found and _is_own_code(found["file"]):
            path = Path(found["file"])
            try:
                shown = path.relative_to(Path.cwd())
            except ValueError:
                shown = path
            return f"{shown}:{found['line']}, in {found['function']}"
    return None


def _is_own_code(file: str) -> bool:
    """Not Mesh, not an installed package, not the standard library, not compiled code."""
    if not os.path.isabs(file) or not file.endswith(".py"):
        return False
    path = os.path.realpath(file)
    if "site-packages" in Path(path).parts or "dist-packages" in Path(path).parts:
        return False
    return not any(path == root or path.startswith(root + os.sep) for root in _library_roots())


def _library_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    roots.add(str(Path(__file__).resolve().parents[1]))  # mesh_core itself
    return [os.path.realpath(root) for root in roots]


def error_names(cls: type) -> set[str]:
    """The names of `cls` and of every subclass: what a serialized error's `cls_name` may be."""
    return {cls.__name__}.union(*(error_names(sub) for sub in cls.__subclasses__()))


def _mesh_errors() -> set[str]:
    return error_names(MeshError)
