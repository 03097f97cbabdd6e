"""`mesh preview`: a change's effect on every consumer's data, before it merges (exit 1: a check would newly fail, or a product raised)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from mesh_core.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command, home, registry_state


def register(commands) -> None:
    sub = add_command(
        commands, "preview",
        "run what a change touches, and everything downstream, in a sandbox; diff each product's data "
        "against its published version (exit 1 if a check would newly fail or a product raises)", preview,
        domains="only the changed products of this domain (repeatable); their downstream products in every domain still run",
        json_help="print the preview as JSON")
    sub.add_argument("products", nargs="*", metavar="PRODUCT",
                     help="preview these products (domain.product) instead of what changed since --base")
    sub.add_argument("--base", metavar="REF", help="git ref to compare the working tree with (default: the merge base of HEAD and main)")
    sub.add_argument("--markdown", metavar="FILE", help="also write the preview as Markdown (a pull-request comment) to FILE")
    sub.add_argument("--keep-sandbox", metavar="DIR", help="keep the sandbox (instance, ports, stores) in DIR, a new or empty folder")


def preview(args) -> int:
    from mesh_core.operate.preview import preview as run_preview
    from mesh_core.operate.preview_report import as_json, as_markdown, as_text

    if args.markdown and (Path(args.markdown).is_dir() or not Path(args.markdown).resolve().parent.is_dir()):
        print(f"mesh: error: --markdown {args.markdown}: not a file in an existing folder, so the comment could not be "
              "written after the preview ran. Name a file in an existing folder (e.g. --markdown comment.md).",
              file=sys.stderr)
        return EXIT_USAGE
    real_home = home(args)  # the real instance: only read, never created
    registry = registry_state(args)  # consumers known from the registry only: their registered expectations run
    say = (lambda message: None) if args.json else (lambda message: print(message, file=sys.stderr, flush=True))

    def interrupted(signum, frame):  # SIGTERM (a CI timeout, `kill`): unwind like Ctrl-C, so the base's git
        raise KeyboardInterrupt      # worktree and the sandbox folder are removed, not left behind
    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        result = run_preview(Path(args.workspace).resolve(), base=args.base, products=args.products,
                             domains=args.domain or (), real_home=real_home, keep_sandbox=args.keep_sandbox,
                             log_level="INFO" if args.verbose else "CRITICAL", registry=registry, say=say)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.markdown:
        Path(args.markdown).write_text(as_markdown(result), encoding="utf-8")
    print(json.dumps(as_json(result), indent=2) if args.json else as_text(result))
    return EXIT_FAILED if result.exit_code else EXIT_OK
