"""Deployment config derived from workspace.yaml: the Helm chart's user deployments.

Dagster's Helm chart names every code location once more, as a user deployment (a gRPC code
server). A second, hand-kept list of the domains drifts from the workspace, so Mesh derives it:
`helm_values` rewrites only the `dagster-user-deployments.deployments` list of
`deploy/helm/values.yaml` (beside workspace.yaml), one entry per workspace location in workspace
order. An entry that is already right keeps its text, comments included; a new domain's entry
copies the settings of the first existing one; the rest of the file is kept byte for byte.
`mesh new domain`, `mesh remove domain` and `mesh deploy helm` write it, and lint reports a file
that is not what they would write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from mesh_core.errors import MeshError, Violation

HELM_VALUES = Path("deploy") / "helm" / "values.yaml"
COMMAND = "mesh deploy helm"
SECTION = "dagster-user-deployments"
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
    if text is None:
        text = NEW_FILE
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MeshError(f"{where} is not valid YAML ({exc.__class__.__name__}: {exc}); fix it, then run `{COMMAND}`.") from None
    if not isinstance(document, dict):
        raise MeshError(f"{where} is not a mapping of Helm values; fix it, then run `{COMMAND}`.")
    section = document.get(SECTION)
    current = section.get("deployments") if isinstance(section, dict) else None
    if not isinstance(current, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in current):
        current = []
    blocks = _blocks(text, current) if current else {}
    by_name = {d["name"]: d for d in current}
    template = current[0] if current else {"name": "", **DEFAULT_ENTRY}
    indent = _item_indent(text, blocks)
    body = []
    for name, module in locations:
        entry = by_name.get(name)
        if entry is not None and entry.get("dagsterApiGrpcArgs") == grpc_args(name, module):
            body.append(blocks[name])  # right already: its text as the user wrote it
            continue
        settings = {k: v for k, v in (entry or template).items() if k not in ("name", "dagsterApiGrpcArgs")}
        body.append(_render({"name": name, **({"image": settings.pop("image")} if "image" in settings else {}),
                             "dagsterApiGrpcArgs": grpc_args(name, module), **settings}, indent))
    new = _replace_list(text, document, current, blocks, "".join(body), indent)
    _check(text, new, locations, where)
    return new


def stale_deployments(workspace_path: Path, locations: list[tuple[str, str]]) -> list[Violation]:
    """Lint: the values file (when there is one) is what `mesh deploy helm` would write."""
    path = values_path(workspace_path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        derived = helm_values(locations, text, where=str(HELM_VALUES))
    except MeshError as exc:
        return [Violation("*", None, "deployment-current", str(exc), f"fix {HELM_VALUES} by hand.")]
    if derived == text:
        return []
    listed = [d.get("name") for d in ((yaml.safe_load(text) or {}).get(SECTION) or {}).get("deployments") or []
              if isinstance(d, dict)]
    names = [name for name, _ in locations]
    missing, extra = [n for n in names if n not in listed], [n for n in listed if n not in names]
    what = "; ".join(filter(None, [f"no user deployment for {', '.join(missing)}" if missing else "",
                                   f"user deployments for domains the workspace does not list: {', '.join(map(str, extra))}"
                                   if extra else ""])) or "its user deployments do not match workspace.yaml (modules or order)"
    return [Violation("*", None, "deployment-current", f"{HELM_VALUES} is stale: {what}.",
                      f"run `{COMMAND}` and commit {HELM_VALUES}.")]


# -- text ---------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _starts(text: str, count: int) -> list[int]:
    """Line numbers where each of the deployments list's items starts (ruamel keeps positions)."""
    from ruamel.yaml import YAML

    document = YAML(typ="rt").load(text)
    items = document[SECTION]["deployments"]
    return [items.lc.item(i)[0] for i in range(count)]


def _blocks(text: str, current: list[dict]) -> dict[str, str]:
    """Each existing entry's text, from its `- ` line up to the next entry or the end of the list."""
    lines = _lines(text)
    starts = _starts(text, len(current))
    dash = len(lines[starts[0]]) - len(lines[starts[0]].lstrip())
    end = starts[-1] + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > dash
                                or (lines[end].lstrip().startswith("#") and len(lines[end]) - len(lines[end].lstrip()) >= dash)):
        end += 1
    while end > starts[-1] + 1 and not lines[end - 1].strip():  # blank lines after the list stay outside it
        end -= 1
    bounds = starts + [end]
    return {entry["name"]: "".join(lines[bounds[i]:bounds[i + 1]]) for i, entry in enumerate(current)}


def _item_indent(text: str, blocks: dict[str, str]) -> str:
    if blocks:
        first = next(iter(blocks.values()))
        return first[: len(first) - len(first.lstrip())]
    return "    "


def _replace_list(text: str, document: dict, current: list[dict], blocks: dict[str, str], body: str, indent: str) -> str:
    lines = _lines(text)
    if current:
        start = _starts(text, 1)[0]
        end = start + sum(len(_lines(block)) for block in blocks.values())
        return "".join(lines[:start]) + body + "".join(lines[end:])
    if SECTION not in document:  # no section yet: add it at the end
        tail = "" if text.endswith("\n") or not text else "\n"
        return text + tail + f"\n{SECTION}:\n  enabled: true\n  deployments:\n" + body
    # The section exists with no usable list: replace its `deployments:` value.
    for i, line in enumerate(lines):
        if re.match(r"^\s+deployments\s*:", line):
            end = i + 1
            key_indent = len(line) - len(line.lstrip())
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > key_indent):
                end += 1
            return "".join(lines[:i]) + f"{line[:key_indent]}deployments:\n" + body + "".join(lines[end:])
    for i, line in enumerate(lines):
        if line.startswith(f"{SECTION}:"):
            return "".join(lines[: i + 1]) + "  deployments:\n" + body + "".join(lines[i + 1:])
    raise MeshError(f"cannot find where to write the user deployments in {HELM_VALUES}; write `{SECTION}:` at the top level.")


def _render(entry: dict, indent: str) -> str:
    """One entry in the file's style: block keys, flow values."""
    pad = indent + "  "
    keys = list(entry.items())
    first, *rest = keys
    return "".join([f"{indent}- {first[0]}: {_flow(first[1])}\n", *(f"{pad}{k}: {_flow(v)}\n" for k, v in rest)])


def _flow(value, *, in_list: bool = False) -> str:
    """Flow YAML as the chart's examples write it: words plain, versions and list items quoted."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v, in_list=True) for v in value) + "]"
    if isinstance(value, str):
        plain = not in_list and re.fullmatch(r"[A-Za-z][A-Za-z0-9_./:@-]*|[0-9]+[A-Za-z]+", value) is not None
        return value if plain and yaml.safe_load(value) == value else json.dumps(value)
    return json.dumps(value)


def _check(old: str, new: str, locations: list[tuple[str, str]], where: str) -> None:
    """The rewrite changed the user deployments and nothing else, or it is refused."""
    before, after = yaml.safe_load(old) or {}, yaml.safe_load(new) or {}
    rest = lambda doc: {k: v for k, v in doc.items() if k != SECTION}  # noqa: E731
    section = lambda doc: {k: v for k, v in (doc.get(SECTION) or {}).items() if k not in ("deployments", "enabled")}  # noqa: E731
    derived = [(d["name"], d["dagsterApiGrpcArgs"]) for d in (after.get(SECTION) or {}).get("deployments") or []]
    if (rest(before) != rest(after) or section(before) != section(after)
            or derived != [(name, grpc_args(name, module)) for name, module in locations]):
        raise MeshError(f"Mesh could not rewrite the user deployments of {where} safely (is the list written one "
                        f"`- name:` entry per item?); write one entry per workspace location by hand:\n"
                        + "".join(_render({"name": n, "dagsterApiGrpcArgs": grpc_args(n, m)}, "    ") for n, m in locations))


def derived_values(workspace_path: Path, locations: list[tuple[str, str]] | None = None,
                   path: Path | None = None) -> tuple[Path, str | None, str]:
    """(values file, its text now or None, the text derived from the workspace's locations)."""
    from mesh_core.governance.workspace import read_entries

    path = Path(path) if path is not None else values_path(workspace_path)
    if locations is None:
        locations = [(name, module) for name, module, _ in read_entries(Path(workspace_path).resolve())]
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise MeshError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    return path, old, helm_values(locations, old, where=str(path))


def write_values(path: Path, text: str) -> None:
    """Replace the file whole: a crash leaves the old file or the new one, never half of each."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
