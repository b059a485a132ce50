"""The command-line reference of the docs site (docs/reference/cli.md), written from the parser itself so that
it lists every flag of every command with its real default:

    python -m aocr.cli.reference docs/reference/cli.md
"""

from __future__ import annotations

import argparse
import re
import sys

from aocr.cli.parser import build_parser

USAGE_WIDTH = 100
# "(default: X)" at the end of a flag's help: the table has a column for it.
DEFAULT_NOTE = re.compile(r"\s*\(default: %\(default\)s\)")
HEADER = """# Command-line flags

Every flag of every `aocr` command, as `aocr COMMAND --help` prints it. This page is written from the
command-line parser (`python -m aocr.cli.reference docs/reference/cli.md`); a test keeps it current.
"""


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, its pipes and brackets escaped (not a column, not a link)."""
    return " ".join(text.split()).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def _default(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS) or isinstance(action, argparse._StoreConstAction):
        return ""
    return f"`{action.default}`"


def _flag(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.option_strings and action.nargs != 0 and not isinstance(action, argparse.BooleanOptionalAction):
        names += f" {_cell(str(action.metavar or action.dest.upper()))}"
    return names


def _usage(command: argparse.ArgumentParser) -> str:
    """The command's usage line at a fixed width, whatever the terminal's."""
    formatter = argparse.HelpFormatter(command.prog, width=USAGE_WIDTH)
    formatter.add_usage(command.usage, command._actions, command._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _group_table(group: argparse._ArgumentGroup) -> list[str]:
    actions = [action for action in group._group_actions
               if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)]
    if not actions:
        return []
    rows = [f"**{group.title}**", "", "| flag | default | what it does |", "| --- | --- | --- |"]
    for action in actions:
        help_text = DEFAULT_NOTE.sub("", action.help or "").replace("%(default)s", str(action.default))
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            help_text += f" (one of: {', '.join(map(str, action.choices))})"
        rows.append(f"| {_flag(action)} | {_default(action)} | {_cell(help_text)} |")
    return [*rows, ""]


def markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference page: each command's description, usage and flags, group by group."""
    parser = parser or build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    lines = [HEADER]
    for name, command in commands.items():
        lines += [f"## aocr {name}", "", _cell(command.description or ""), "", "```", _usage(command), "```", ""]
        for group in command._action_groups:
            lines += _group_table(group)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    if target:
        with open(target, "w", encoding="utf-8") as out:
            out.write(markdown())
    else:
        sys.stdout.write(markdown())
