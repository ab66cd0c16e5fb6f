"""`mezzo run`'s click-free path (`mezzo.cli.fast_args.parse_run`) parses as the click command does.

The fast parser accepts only well-formed command lines and hands everything else to click; what it
accepts it must read exactly as click reads it (same option values, same command words), and its
option table must be the click command's.
"""

from __future__ import annotations

import pytest

from mezzo.cli.common import DEFAULT_MASTER, MASTER_ENV
from mezzo.cli.fast_args import RUN_OPTIONS as OPTIONS
from mezzo.cli.fast_args import parse_run as parse_args
from mezzo.cli.one_task import _uuid4
from mezzo.cli.run import run

ACCEPTED = [
    ["--", "true"],
    ["true"],
    ["echo", "hi", "--name", "x"],
    ["--master", "10.0.0.1:5050", "--", "echo", "hi"],
    ["--master=zk://h:2181/mesos", "sleep", "1"],
    ["--name", "job", "--resources", "cpus:1;mem:64", "--framework-name", "fw", "--role", "eng",
     "--", "exit 3"],
    ["--resources=cpus:0.5", "--", "--not-an-option"],
    ["--role=", "--", "true"],
    ["--", "--", "x"],
    ["-", "true"],
]
REFUSED = [
    [],
    ["--"],
    ["--help"],
    ["-h"],
    ["--bogus", "x", "--", "true"],
    ["--name"],
    ["--name", "--", "true"],
    ["--master", "-x", "true"],
    ["--mast", "h:1", "true"],
]


def click_parse(argv: list[str]) -> dict[str, object]:
    ctx = run.make_context("run", list(argv))
    return dict(ctx.params)


@pytest.mark.parametrize("argv", ACCEPTED)
def test_accepted_lines_parse_as_click_parses_them(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_ENV, raising=False)
    fast = parse_args(argv, {})
    assert fast is not None
    assert fast == click_parse(argv)


def test_master_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASTER_ENV, "10.1.1.1:5050")
    assert parse_args(["true"], {MASTER_ENV: "10.1.1.1:5050"}) == click_parse(["true"])
    assert parse_args(["--master", "h:1", "true"], {MASTER_ENV: "x:2"})["master"] == "h:1"  # type: ignore[index]
    assert parse_args(["true"], {MASTER_ENV: ""})["master"] == DEFAULT_MASTER  # type: ignore[index]


@pytest.mark.parametrize("argv", REFUSED)
def test_anything_else_goes_to_click(argv: list[str]) -> None:
    assert parse_args(argv, {}) is None


def test_option_table_is_the_click_commands() -> None:
    opts = {opt: p.name for p in run.params for opt in p.opts if opt.startswith("--")}
    assert opts == OPTIONS


def test_uuid4_shape() -> None:
    import uuid

    ids = {_uuid4() for _ in range(100)}
    assert len(ids) == 100
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and str(parsed) == text
