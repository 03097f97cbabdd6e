"""Deployment config derived from workspace.yaml: the Helm chart's user deployments.

Dagster's Helm chart names every code location once more, as a user deployment (a gRPC code
server). A second, hand-kept list of the domains drifts from the workspace, so Mesh derives it:
`helm_values` rewrites only the `dagster-user-deployments.deployments` list of
`deploy/helm/values.yaml` (beside workspace.yaml), one entry per workspace location in workspace
order. An entry that already serves its domain's module keeps its text, comments and extra server
arguments included; a new domain's entry copies the settings of the first existing one; the rest
of the file is kept byte for byte, line endings included. A file this cannot rewrite safely is
refused, never half-written. `mesh new domain`, `mesh remove domain` and `mesh deploy helm` write
it, and lint reports a file that is not what they would write.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mesh_core.errors import MeshError, Violation

HELM_VALUES = Path("deploy") / "helm" / "values.yaml"
COMMAND = "mesh deploy helm"
SECTION = "dagster-user-deployments"
ARGS_KEYS = ("dagsterApiGrpcArgs", "codeServerArgs")  # the chart takes either
# A new file's entries, when there is no entry to copy settings from: the image is the user's.
DEFAULT_ENTRY = {"image": {"repository": "registry.example.com/mesh", "tag": "latest", "pullPolicy": "IfNotPresent"},
                 "port": 3030, "envSecrets": [{"name": "mesh-ports"}], "envConfigMaps": [{"name": "mesh-settings"}],
                 "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}
NEW_FILE = ("# Values for Dagster's Helm chart (docs/deploy.md). The user deployments below are derived from\n"
            f"# workspace.yaml by `{COMMAND}`; the rest of this file is yours and is kept as you write it.\n")


def values_path(workspace_path: Path) -> Path:
    return Path(workspace_path).resolve().parent / HELM_VALUES


def grpc_args(name: str, module: str) -> list[str]:
    return ["--module-name", module, "--location-name", name]


def helm_values(locations: list[tuple[str, str]], text: str | None, *, where: str = str(HELM_VALUES)) -> str:
    """The values file with one user deployment per (location name, module), in that order."""
    text = NEW_FILE if text is None else text
    newline = "\r\n" if "\r\n" in text else "\n"
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MeshError(f"{where} is not valid YAML ({' '.join(str(exc).split())}); fix it, then run `{COMMAND}`.") from None
    if not isinstance(document, dict):
        raise MeshError(f"{where} is not a mapping of Helm values; fix it, then run `{COMMAND}`.")
    section = document.get(SECTION)
    current = section.get("deployments") if isinstance(section, dict) else None
    current = current if isinstance(current, list) else []
    for number, entry in enumerate(current, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise MeshError(f"entry {number} of {SECTION}.deployments in {where} has no name; give it one or delete it, "
                            f"then run `{COMMAND}`.")
    try:
        start, blocks = _blocks(text, current) if current else (0, [])
        template = current[0] if current else {"name": "", **DEFAULT_ENTRY}
        indent = _item_indent(blocks)
        by_name = {entry["name"]: (entry, block) for entry, block in zip(current, blocks)}
        body = []
        for name, module in locations:
            entry, block = by_name.get(name, (None, None))
            if entry is not None and _serves(entry, name, module):
                body.append(block)  # right already: its text as the user wrote it
                continue
            source = entry or template
            settings = {k: v for k, v in source.items() if k != "name" and k not in ARGS_KEYS}
            first = {"image": settings.pop("image")} if "image" in settings else {}
            body.append(_render({"name": name, **first, _args_key(source): _fixed_args(source, name, module), **settings},
                                indent, newline))
        new = _replace_list(text, document, start, blocks, "".join(body), newline)
        _check(text, new, locations)
    except MeshError:
        raise
    except Exception as exc:  # a layout this rewrite does not handle: never write a broken file
        raise MeshError(f"Mesh could not rewrite the user deployments of {where} safely ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}); write one entry per workspace location by hand, "
                        "e.g.:\n" + "".join(_render({"name": n, "dagsterApiGrpcArgs": grpc_args(n, m)}, "    ", "\n")
                                           for n, m in locations)) from None
    return new


def stale_deployments(workspace_path: Path, locations: list[tuple[str, str]]) -> list[Violation]:
    """Lint: the values file (when there is one) is what `mesh deploy helm` would write."""
    if not values_path(workspace_path).is_file():
        return []
    try:
        _, text, derived = derived_values(workspace_path, locations)
    except MeshError as exc:
        return [Violation("*", None, "deployment-current", str(exc), f"fix {HELM_VALUES} by hand.")]
    if derived == text:
        return []
    listed = [entry["name"] for entry in ((yaml.safe_load(text) or {}).get(SECTION) or {}).get("deployments") or []]
    names = [name for name, _ in locations]
    missing, extra = [n for n in names if n not in listed], [n for n in listed if n not in names]
    what = "; ".join(filter(None, [f"no user deployment for {', '.join(missing)}" if missing else "",
                                   f"user deployments for domains the workspace does not list: {', '.join(extra)}"
                                   if extra else ""])) or "its user deployments do not match workspace.yaml (modules or order)"
    return [Violation("*", None, "deployment-current", f"{HELM_VALUES} is stale: {what}.",
                      f"run `{COMMAND}` and commit {HELM_VALUES}.")]


def derived_values(workspace_path: Path, locations: list[tuple[str, str]] | None = None,
                   path: Path | None = None) -> tuple[Path, str | None, str]:
    """(values file, its text now or None, the text derived from the workspace's locations)."""
    from mesh_core.governance.workspace import read_entries

    path = Path(path) if path is not None else values_path(workspace_path)
    if locations is None:
        locations = [(entry.name, entry.module) for entry in read_entries(Path(workspace_path).resolve())]
    try:
        old = path.read_bytes().decode("utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise MeshError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    return path, old, helm_values(locations, old, where=str(path))


# -- entries ------------------------------------------------------------------------------

def _args_key(entry: dict) -> str:
    return next((key for key in ARGS_KEYS if key in entry), ARGS_KEYS[0])


def _serves(entry: dict, name: str, module: str) -> bool:
    """The entry's code server serves this module under this location name (other arguments are the user's)."""
    args = entry.get(_args_key(entry))
    if not isinstance(args, list):
        return False
    value = lambda flag: args[args.index(flag) + 1] if flag in args[:-1] else None  # noqa: E731
    return entry.get("name") == name and value("--module-name") == module and value("--location-name") == name


def _fixed_args(entry: dict, name: str, module: str) -> list:
    """The entry's server arguments with this module and location name; the user's others kept."""
    args = entry.get(_args_key(entry))
    args = list(args) if isinstance(args, list) else []
    for flag, value in (("--module-name", module), ("--location-name", name)):
        if flag in args[:-1]:
            args[args.index(flag) + 1] = value
        else:
            args = [item for item in args if item != flag] + [flag, value]
    return args


# -- text ---------------------------------------------------------------------------------

def _blocks(text: str, current: list[dict]) -> tuple[int, list[str]]:
    """The line the list starts on, and each existing entry's text, from its `- ` line up to the
    next entry or the end of the list."""
    from ruamel.yaml import YAML

    items = YAML(typ="rt").load(text)[SECTION]["deployments"]
    starts = [items.lc.item(i)[0] for i in range(len(current))]
    lines = text.splitlines(keepends=True)
    if lines[starts[0]].lstrip().startswith(("[", "{")) or not lines[starts[0]].lstrip().startswith("-"):
        raise ValueError("the list is not written one `- name:` entry per item")
    dash = len(lines[starts[0]]) - len(lines[starts[0]].lstrip())
    end = starts[-1] + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > dash
                                or (lines[end].lstrip().startswith("#") and len(lines[end]) - len(lines[end].lstrip()) >= dash)):
        end += 1
    while end > starts[-1] + 1 and not lines[end - 1].strip():  # blank lines after the list stay outside it
        end -= 1
    bounds = starts + [end]
    return starts[0], ["".join(lines[bounds[i]:bounds[i + 1]]) for i in range(len(current))]


def _item_indent(blocks: list[str]) -> str:
    return blocks[0][: len(blocks[0]) - len(blocks[0].lstrip())] if blocks else "    "


def _replace_list(text: str, document: dict, start: int, blocks: list[str], body: str, newline: str) -> str:
    lines = text.splitlines(keepends=True)
    if blocks:
        end = start + sum(len(block.splitlines(keepends=True)) for block in blocks)
        return "".join(lines[:start]) + body + "".join(lines[end:])
    if SECTION not in document:  # no section yet: add it at the end
        tail = "" if text.endswith("\n") or not text else newline
        return text + tail + newline.join(["", f"{SECTION}:", "  enabled: true", "  deployments:", ""]) + body
    if not isinstance(document[SECTION], dict):
        raise ValueError(f"{SECTION} is not a mapping")
    # The section exists with no usable list: replace its `deployments:` value, or add one.
    for i, line in enumerate(lines):
        if re.match(r"^\s+deployments\s*:", line):
            end = i + 1
            key_indent = len(line) - len(line.lstrip())
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > key_indent):
                end += 1
            return "".join(lines[:i]) + f"{line[:key_indent]}deployments:{newline}" + body + "".join(lines[end:])
    for i, line in enumerate(lines):
        if re.match(rf"^{SECTION}\s*:\s*(#.*)?$", line.rstrip("\r\n")):
            return "".join(lines[: i + 1]) + f"  deployments:{newline}" + body + "".join(lines[i + 1:])
    raise ValueError(f"{SECTION} is not written as a block mapping")


def _render(entry: dict, indent: str, newline: str) -> str:
    """One entry: block keys, each value in flow style as YAML itself writes it."""
    pad = indent + "  "
    return "".join(f"{pad if i else indent + '- '}{_flow(key)}: {_flow(value)}{newline}"
                   for i, (key, value) in enumerate(entry.items()))


def _flow(value) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20, allow_unicode=True)
    return dumped.strip().removesuffix("...").strip()


def _check(old: str, new: str, locations: list[tuple[str, str]]) -> None:
    """The rewrite changed the user deployments and nothing else, or it is refused."""
    before, after = yaml.safe_load(old) or {}, yaml.safe_load(new) or {}
    rest = lambda doc: {k: v for k, v in doc.items() if k != SECTION}  # noqa: E731
    section = lambda doc: {k: v for k, v in (doc.get(SECTION) or {}).items() if k not in ("deployments", "enabled")}  # noqa: E731
    entries = (after.get(SECTION) or {}).get("deployments") or []
    if rest(before) != rest(after) or section(before) != section(after) or len(entries) != len(locations) \
            or not all(_serves(entry, name, module) for entry, (name, module) in zip(entries, locations)):
        raise ValueError("the rewritten file would differ elsewhere, or not list the workspace's domains")
