"""Fail when a function is longer than the limit, not counting its docstring and data literals.

A data literal is a dict, list, tuple or set display, or a string, spanning several lines (a field
list, a JSON document, a message): those lines are data, not logic. Nested functions count toward the
function that holds them. Usage: ``python scripts/function_length.py [--max 60] [PATH ...]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PATHS = ("s3av", "accounts", "linked_accounts", "scanning", "sso")
LITERALS = (ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Constant, ast.JoinedStr)


def _literal_lines(function: ast.AST) -> set[int]:
    """Lines inside multi-line data literals, except the line each one starts on."""
    lines: set[int] = set()
    for node in ast.walk(function):
        if isinstance(node, LITERALS) and node.end_lineno and node.end_lineno > node.lineno:
            if isinstance(node, ast.Constant) and not isinstance(node.value, str):
                continue
            lines.update(range(node.lineno + 1, node.end_lineno + 1))
    return lines


def _docstring_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    first = function.body[0] if function.body else None
    value = first.value if isinstance(first, ast.Expr) else None
    if isinstance(value, ast.Constant) and isinstance(value.value, str) and first is not None:
        return set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return set()


def long_functions(path: Path, limit: int) -> Iterator[tuple[int, str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        length = len(lines - _literal_lines(node) - _docstring_lines(node))
        if length > limit:
            yield node.lineno, node.name, length


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=60)
    parser.add_argument("paths", nargs="*", default=DEFAULT_PATHS)
    args = parser.parse_args(argv)
    found = 0
    for root in map(Path, args.paths):
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            if "migrations" in path.parts:
                continue
            for line, name, length in long_functions(path, args.max):
                print(f"{path}:{line}: {name} is {length} lines (at most {args.max})")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
