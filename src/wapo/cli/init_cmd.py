"""``wapo init [DIR] --template js|ts|hono``: a ready agent project (package.json with pinned
versions, tsconfig for TypeScript, src/index.*, a README, npm scripts running wapo dev, call and
publish). The templates are package data under ``wapo/cli/templates/``."""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path

TEMPLATES = ("js", "ts", "hono")
RENAMED = {"gitignore": ".gitignore"}  # dotfiles are not reliably kept as package data


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create an agent project (js, ts or hono template)",
                       description="Create an agent project in DIR (default: the current folder, which must "
                                   "then be empty): package.json with pinned versions, src/index.ts or "
                                   "src/index.js, a README, and npm scripts for `wapo dev`, `wapo call` and "
                                   "`wapo publish`.")
    p.add_argument("dir", type=Path, nargs="?", default=Path("."), metavar="DIR")
    p.add_argument("--template", "-t", choices=TEMPLATES, default="ts", help="default: ts")
    p.add_argument("--name", default=None, help="the package name (default: the folder's name)")


class InitError(RuntimeError):
    """The project cannot be created there; the message says why."""


def _package_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name or "wapo-agent"


def create(target: Path, template: str, name: str | None = None) -> list[Path]:
    """Write the project; the files written, relative to ``target``. Refuses to overwrite files."""
    if template not in TEMPLATES:
        raise InitError(f"unknown template {template!r}: one of {', '.join(TEMPLATES)}")
    root = resources.files("wapo.cli") / "templates" / template
    files: list[tuple[str, str]] = []

    def walk(node, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif not child.name.endswith((".pyc",)):
                files.append((prefix + RENAMED.get(child.name, child.name), child.read_text(encoding="utf-8")))

    walk(root, "")
    target = target.resolve()
    clashes = [rel for rel, _ in files if (target / rel).exists()]
    if clashes:
        raise InitError(f"{target} already has {', '.join(clashes)}: choose an empty or new folder")
    entry = next(rel for rel, _ in files if rel.startswith("src/index."))
    values = {"name": _package_name(name or target.name), "template": template, "entry": entry}
    written = []
    for rel, text in files:
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(Path(rel))
    return written


def run(args: argparse.Namespace) -> int:
    try:
        written = create(args.dir, args.template, args.name)
    except (InitError, OSError) as exc:
        print(f"wapo init: {exc}", file=sys.stderr)
        return 2
    where = args.dir
    for rel in written:
        print(f"  {where / rel}")
    steps = [f"cd {where}" if Path(where).resolve() != Path.cwd().resolve() else None,
             "npm install" if args.template == "hono" else None,
             "wapo dev .  (serves it with reload)", "wapo publish .  (bundles and stores it, prints its CID)"]
    print(f"created a {args.template} agent project; next:\n" + "\n".join(f"  {s}" for s in steps if s))
    return 0
