"""`mezzo master --help` and `mezzo agent --help` without click: the daemons' pages made from
their flag tables, character for character as click lays them out.

click's import alone is ≈ 40 ms of CPU on a slow machine and laying out ~100 options another
25–30 ms, which put these two pages over issue 12's 100 ms. `mezzo.cli.main` prints them from
here when the command line is exactly `mezzo master|agent --help` (or `-h`); anything else is
click's. The layout is click's `HelpFormatter` (8.x): the usage line, the command's help
indented by two, and the options as a two-column list whose first column is at most 30
characters wide, wrapped to the terminal's width less two, clamped to 50–78
(`shutil.get_terminal_size`'s rules for the width, without importing shutil).
tests/test_cli_flag_help.py compares the two at every width.

Standard library only: `textwrap`, with click's one change to it (`_ClickWrapper`).
"""

from __future__ import annotations

import os
import sys
import textwrap

# Typing names for the checker only: importing `typing` costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from mezzo.core.flags import FlagSet

COL_MAX = 30  # click's `write_dl`: the widest first column
COL_SPACING = 2
INDENT = 2
HELP_ROW = (["-h", "--help"], "Show this message and exit.")


class _ClickWrapper(textwrap.TextWrapper):
    """`textwrap.TextWrapper` breaking a word too long for its line as click's wrapper does:
    at the space left on the line (at least one character), never at a hyphen."""

    def _handle_long_word(self, reversed_chunks: list[str], cur_line: list[str], cur_len: int,
                          width: int) -> None:
        space_left = max(width - cur_len, 1)
        if self.break_long_words:
            last = reversed_chunks[-1]
            cur_line.append(last[:space_left])
            reversed_chunks[-1] = last[space_left:]
        elif not cur_line:
            cur_line.append(reversed_chunks.pop())


def terminal_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` finds it: `COLUMNS`, else the
    terminal of standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


def daemon_help(command: str, columns: int | None = None) -> str:
    """The `--help` page of `mezzo master` or `mezzo agent` (`command`), for a terminal
    `columns` wide (None: this one's)."""
    if command == "master":
        from mezzo.master.flag_table import COMMAND_HELP, FLAGS
    elif command == "agent":
        from mezzo.agent.flag_table import COMMAND_HELP, FLAGS
    else:
        raise ValueError(f"no flag table for {command!r}")
    width = max(min(terminal_columns() if columns is None else columns, 80) - 2, 50)
    return _page(f"mezzo {command}", COMMAND_HELP, FLAGS, width)


def _page(prog: str, summary: str, flags: FlagSet, width: int) -> str:
    out = [f"Usage: {prog} [OPTIONS]", ""]
    out += _ClickWrapper(width, initial_indent=" " * INDENT, subsequent_indent=" " * INDENT,
                                replace_whitespace=False).wrap(summary)
    out += ["", "Options:"]
    rows = [(", ".join(spellings) + " TEXT", text) for _, spellings, text in flags.options()]
    rows.append((", ".join(HELP_ROW[0]), HELP_ROW[1]))
    first_col = min(max(len(first) for first, _ in rows), COL_MAX) + COL_SPACING
    wrapper = _ClickWrapper(max(width - first_col - 2, 10), replace_whitespace=False)
    pad = " " * (first_col + INDENT)
    for first, text in rows:
        lines = wrapper.wrap(text.expandtabs())
        head = " " * INDENT + first
        if len(first) <= first_col - COL_SPACING:
            head += " " * (first_col - len(first)) + (lines[0] if lines else "")
            rest = lines[1:]
        else:
            out.append(head)
            head, rest = pad + (lines[0] if lines else ""), lines[1:]
        out.append(head.rstrip() if not lines else head)
        out += [pad + line for line in rest]
    return "\n".join(out) + "\n"
