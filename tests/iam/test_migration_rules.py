"""``iam db upgrade`` is safe while the previous version still serves (issue 17 part 4).

The rule for every migration from 0015 on (README "Upgrading"): *expand* only — add tables,
nullable columns or columns with a server default, indexes. A step that the old version would
trip over (drop or rename a table or column, make a column NOT NULL without a default, change a
type) is a *contract* step: it goes into a later release, after every node runs the version
that no longer uses the old shape, and its migration says so with a line
``# contract: <why the old shape is no longer used>``. This test reads the migrations' source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

VERSIONS = Path(__file__).resolve().parents[2] / "iam" / "migrations" / "versions"
#: Migrations written before the rule; all ran while no older version served.
BEFORE_RULE = {"0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0010", "0011", "0014"}
CONTRACT_OPS = {"drop_table", "drop_column", "rename_table", "drop_constraint"}


def _upgrade_calls(tree: ast.Module) -> list[ast.Call]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
            return [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    return []


def _violations(source: str) -> list[str]:
    if re.search(r"^\s*# contract: \S", source, re.M):
        return []
    out = []
    for call in _upgrade_calls(ast.parse(source)):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else ""
        kwargs = {k.arg: k.value for k in call.keywords}
        if name in CONTRACT_OPS:
            out.append(f"op.{name}")
        if name == "alter_column" and ({"new_column_name", "type_"} & set(kwargs)):
            out.append("op.alter_column renames or retypes")
        if (
            name == "alter_column"
            and isinstance(kwargs.get("nullable"), ast.Constant)
            and kwargs["nullable"].value is False
        ):
            out.append("op.alter_column(nullable=False)")
        if name == "add_column":
            col = call.args[1] if len(call.args) > 1 else None
            if isinstance(col, ast.Call):
                ck = {k.arg: k.value for k in col.keywords}
                not_null = isinstance(ck.get("nullable"), ast.Constant) and ck["nullable"].value is False
                if not_null and "server_default" not in ck:
                    out.append("op.add_column NOT NULL without server_default")
    return out


def test_new_migrations_only_expand():
    problems = []
    for path in sorted(VERSIONS.glob("*.py")):
        if path.name.split("_")[0] in BEFORE_RULE:
            continue
        problems += [f"{path.name}: {v}" for v in _violations(path.read_text())]
    assert problems == [], "contract steps need a '# contract: …' line (README, Upgrading): " + "; ".join(
        problems
    )


def test_the_rule_catches_what_it_should():
    bad = 'def upgrade():\n    op.drop_column("t", "c")\n    op.add_column("t", sa.Column("x", sa.Integer(), nullable=False))\n'
    assert _violations(bad) == ["op.drop_column", "op.add_column NOT NULL without server_default"]
    ok = 'def upgrade():\n    op.add_column("t", sa.Column("x", sa.Integer(), nullable=False, server_default="0"))\n'
    assert _violations(ok) == []
    assert _violations("# contract: nothing reads t.c since 0.3\n" + bad) == []
