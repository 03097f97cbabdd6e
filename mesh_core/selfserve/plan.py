"""A change to the repository's files, applied all at once or not at all.

`mesh new` and `mesh remove` check everything first, then apply one plan under the repository's
lock; if writing fails half-way (a full disk, a read-only file, Ctrl-C), what was done is taken
back, with Ctrl-C and SIGTERM held off until it is. Removed paths are moved aside first and
deleted only once the whole plan is in; changed files are replaced whole, never half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mesh_core.errors import MeshError

TRASH_PREFIX = ".mesh-removed-"
LOCK_SECONDS = 60.0


@contextlib.contextmanager
def repository_lock(root: Path) -> Iterator[None]:
    """One `mesh new`/`mesh remove`/`mesh deploy helm` at a time on a repository: each reads the
    files the other rewrites. The lock file lives outside the tree, so it never shows in git."""
    import hashlib

    from filelock import FileLock, Timeout

    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"mesh-repository-{key}.lock"
    try:
        with FileLock(str(lock), timeout=LOCK_SECONDS):
            yield
    except Timeout:
        raise MeshError(f"another mesh command has been changing {root} for {LOCK_SECONDS:.0f} s ({lock} is "
                        "held); wait for it to finish, then run this again.") from None


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole: a crash leaves the old file or the new one (its mode kept; 0644 if new)."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclass
class Plan:
    """Paths to remove, files to create and files to change (workspace.yaml best last)."""

    create: dict[Path, bytes] = field(default_factory=dict)
    change: dict[Path, str] = field(default_factory=dict)
    remove: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    executable: set[Path] = field(default_factory=set)  # created files that are scripts (mode 0755)
    _done: list = field(default_factory=list)  # what apply did, newest last, for undo
    _trash: dict = field(default_factory=dict)  # parent folder -> where its removed paths wait

    def apply(self) -> list[Path]:
        """Removals first, then new files, then changes in their order: a run killed half-way
        leaves the workspace entry of a removed domain, so the same command finishes the job."""
        try:
            for path in self.remove:  # moved aside, so undo can put it back whole
                if path.parent not in self._trash:  # same file system: a rename, not a copy
                    self._trash[path.parent] = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=path.parent))
                aside = self._trash[path.parent] / f"{len(self._done)}-{path.name}"
                os.replace(path, aside)
                self._done.append(("removed", path, aside))
            for path, data in self.create.items():
                for parent in reversed(path.parents):
                    if not parent.exists():
                        parent.mkdir()
                        self._done.append(("dir", parent, None))
                with open(path, "xb") as handle:  # never overwrite
                    self._done.append(("file", path, None))
                    handle.write(data)
                if path in self.executable:
                    os.chmod(path, 0o755)
            for path, text in self.change.items():
                before = path.read_bytes()
                replace_file(path, text.encode("utf-8"))  # as given: line endings kept
                self._done.append(("change", path, before))
        except BaseException as exc:
            self.undo()
            if isinstance(exc, OSError):
                where = exc.filename or "a file"
                raise MeshError(f"cannot write {where}: {exc.strerror or exc}. Nothing was changed; make it writable "
                                "(or free space), then run the command again.") from None
            raise
        return [*self.create, *self.change]

    def commit(self) -> None:
        """Delete what was removed: after this, apply cannot be undone."""
        for trash in self._trash.values():
            shutil.rmtree(trash, ignore_errors=True)
        self._trash.clear()

    def undo(self) -> None:
        """Put the tree back as it was before `apply`, every step tried, Ctrl-C held off meanwhile.
        What cannot be put back is named, and the removed paths are left where they wait."""
        failed = []
        with _signals_deferred():
            for kind, path, data in reversed(self._done):
                try:
                    if kind == "change":
                        replace_file(path, data)
                    elif kind == "file":
                        path.unlink(missing_ok=True)
                    elif kind == "removed":
                        os.replace(data, path)
                    else:
                        shutil.rmtree(path, ignore_errors=True)
                except OSError as exc:
                    failed.append(f"{path} ({exc.strerror or exc}{f'; it is at {data}' if kind == 'removed' else ''})")
            self._done.clear()
            if not failed:
                self.commit()  # the trash is empty: everything went back
        if failed:
            raise MeshError("could not put back: " + "; ".join(failed) + ". Restore them by hand (git checkout).")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then arrive as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: received.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def leftovers(*folders: Path) -> list[Path]:
    """Folders an interrupted plan left aside (removed paths it never deleted)."""
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob(f"{TRASH_PREFIX}*"))
