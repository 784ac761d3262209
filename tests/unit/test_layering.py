"""The layers of docs/architecture.md, read from the imports of every module: the core (``hub/``)
knows no feature, features import no other feature but ``rooms``, and the server never imports
the client package. Only the composition root (``hub/app.py``) and the command-line tools built
on it (``hub/cli.py``, ``hub/doctor/``) put features together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("rooms", "chat", "polls", "signalling", "networking")
COMPOSITION = ("hub/app.py", "hub/cli.py", "hub/doctor/")


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", modules("hub"), ids=relative)
def test_the_core_knows_no_feature(path: Path) -> None:
    name = relative(path)
    imported = imported_packages(path)
    if not name.startswith(COMPOSITION):
        assert not imported & set(FEATURES), f"{name} imports a feature"
    # The rehearsal is a client that hub/cli.py starts: the only way in to livehub_client.
    if name != "hub/cli.py":
        assert "livehub_client" not in imported, f"{name} imports the client package"


@pytest.mark.parametrize(
    "path", [p for feature in FEATURES for p in modules(feature)], ids=relative
)
def test_features_import_no_other_feature_but_rooms(path: Path) -> None:
    own = relative(path).split("/")[0]
    others = set(FEATURES) - {own, "rooms"}
    assert not imported_packages(path) & others, f"{relative(path)} imports another feature"
    assert "livehub_client" not in imported_packages(path)
