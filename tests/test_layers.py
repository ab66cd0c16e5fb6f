"""Enforces the dependency rule of docs/architecture.md: lower layers never import higher ones.

    core < api < resources < net/store/election/security < master.allocator < master/agent
         < SDKs (scheduler, executor) / frameworks / sim < cli / testing

Plus: the allocator imports only resources, api and core; the SDKs never import master or agent;
master and agent never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "mezzo"

LEVELS: dict[str, int] = {
    "core": 0,
    "api": 1,
    "resources": 2,
    "net": 3,
    "store": 3,
    "election": 3,
    "security": 3,
    "master.allocator": 4,
    "master": 5,
    "agent": 5,
    "scheduler": 6,
    "executor": 6,
    "frameworks": 7,
    "sim": 7,
    "cli": 8,
    "testing": 8,
    "webui": 8,
}

# Extra, narrower rules: package -> packages it may import (besides itself).
ONLY: dict[str, set[str]] = {
    "master.allocator": {"core", "api", "resources"},
    # The SDKs use `security` for TLS contexts (mezzo.security.tls), nothing of master/agent.
    "scheduler": {"core", "api", "resources", "net", "store", "election", "security"},
    "executor": {"core", "api", "resources", "net", "security"},
    "frameworks": {"core", "api", "resources", "net", "election", "scheduler", "executor"},
}
FORBIDDEN_PAIRS = {("master", "agent"), ("agent", "master")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mezzo" or len(parts) < 2:
        return None
    if parts[1] == "master" and len(parts) > 2 and parts[2] == "allocator":
        return "master.allocator"
    return parts[1] if parts[1] in LEVELS else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def violations() -> list[str]:
    problems: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        here = layer_of(module_name(path))
        if here is None:
            continue
        for imported in imports_of(path):
            there = layer_of(imported)
            if there is None or there == here:
                continue
            where = f"{path.relative_to(ROOT.parent)} imports {imported}"
            if LEVELS[there] > LEVELS[here]:
                problems.append(f"{where}: {there} is above {here}")
            elif here in ONLY and there not in ONLY[here]:
                problems.append(f"{where}: {here} may import only {sorted(ONLY[here])}")
            elif (here, there) in FORBIDDEN_PAIRS:
                problems.append(f"{where}: {here} and {there} must not import each other")
    return problems


def test_dependency_rule_holds() -> None:
    assert violations() == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    # The checker itself must be able to fail: an allocator importing the master is caught.
    assert layer_of("mezzo.master.allocator.drf") == "master.allocator"
    assert layer_of("mezzo.master.core") == "master"
    assert LEVELS[layer_of("mezzo.master.core") or ""] > LEVELS["master.allocator"]
    bad = tmp_path / "bad.py"
    bad.write_text("from mezzo.master.core import Master\nimport mezzo.agent\n")
    assert imports_of(bad) == ["mezzo.master.core", "mezzo.agent"]
