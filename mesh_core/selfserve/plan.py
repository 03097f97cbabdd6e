"""A change to the repository's files, applied all at once or not at all.

`mesh new` and `mesh remove` check everything first, then apply one plan; if writing fails
half-way (a full disk, Ctrl-C), what was done is taken back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Plan:
    """Files to create, files to change and paths to remove."""

    create: dict[Path, bytes] = field(default_factory=dict)
    change: dict[Path, str] = field(default_factory=dict)
    remove: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _done: list = field(default_factory=list)  # what apply did, newest last, for undo
    _trash: dict = field(default_factory=dict)  # parent folder -> where its removed paths wait

    def apply(self) -> list[Path]:
        try:
            for path, data in self.create.items():
                for parent in reversed(path.parents):
                    if not parent.exists():
                        parent.mkdir()
                        self._done.append(("dir", parent, None))
                with open(path, "xb") as handle:  # never overwrite
                    self._done.append(("file", path, None))
                    handle.write(data)
            for path, text in self.change.items():
                self._done.append(("change", path, path.read_bytes()))
                path.write_bytes(text.encode("utf-8"))  # as given: line endings kept
            for path in self.remove:  # moved aside first, so undo can put it back whole
                if path.parent not in self._trash:  # same file system: a rename, not a copy
                    self._trash[path.parent] = Path(tempfile.mkdtemp(prefix=".mesh-removed-", dir=path.parent))
                aside = self._trash[path.parent] / f"{len(self._done)}-{path.name}"
                os.replace(path, aside)
                self._done.append(("removed", path, aside))
        except BaseException:
            self.undo()
            raise
        return [*self.create, *self.change]

    def commit(self) -> None:
        """Forget what was removed: after this, apply cannot be undone."""
        for trash in self._trash.values():
            shutil.rmtree(trash, ignore_errors=True)
        self._trash.clear()

    def undo(self) -> None:
        """Put the tree back as it was before `apply`."""
        for kind, path, data in reversed(self._done):
            if kind == "change":
                path.write_bytes(data)
            elif kind == "file":
                path.unlink(missing_ok=True)
            elif kind == "removed":
                os.replace(data, path)
            else:
                shutil.rmtree(path, ignore_errors=True)
        self._done.clear()
        self.commit()  # the trash is empty now: everything went back

