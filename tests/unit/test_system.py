"""``tests.support.system``: a missing system component skips a test with one line saying what
to install, and fails it instead where every component is required (CI)."""

from __future__ import annotations

import importlib
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import system


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(system.REQUIRE_ALL, raising=False)


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(system.REQUIRE_ALL, "1")


@pytest.mark.usefixtures("lenient")
def test_a_missing_component_skips_with_what_to_install() -> None:
    with pytest.raises(pytest.skip.Exception) as outcome:
        system.require("Janus (/usr/bin/janus)", False, "apt-get install janus")
    assert outcome.value.msg == "needs Janus (/usr/bin/janus): apt-get install janus"


@pytest.mark.usefixtures("strict")
def test_a_missing_component_fails_where_all_are_required() -> None:
    with pytest.raises(pytest.fail.Exception) as outcome:
        system.require("Janus (/usr/bin/janus)", False, "apt-get install janus")
    assert outcome.value.msg == "needs Janus (/usr/bin/janus): apt-get install janus"
    assert outcome.value.pytrace is False


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_only_a_set_flag_requires_all(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(system.REQUIRE_ALL, value)
    with pytest.raises(pytest.skip.Exception):
        system.require("x", False, "apt-get install x")


@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_a_present_component_passes(mode: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(mode)
    system.require("x", True, "apt-get install x")  # neither skips nor fails


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.usefixtures("strict")
def test_require_chromium_returns_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chromium = str(executable(tmp_path / "chromium"))
    monkeypatch.setattr(system, "CHROMIUM", chromium)
    assert system.require_chromium() == chromium


@pytest.mark.usefixtures("lenient")
def test_require_chromium_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_executable = tmp_path / "chromium"
    not_executable.write_text("")
    for path in (tmp_path / "missing", tmp_path, not_executable):
        monkeypatch.setattr(system, "CHROMIUM", str(path))
        with pytest.raises(pytest.skip.Exception) as outcome:
            system.require_chromium()
        assert outcome.value.msg == f"needs Chromium ({path}): apt-get install chromium"


@pytest.fixture
def reloaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Reload the module after the test changed the environment, and again after it."""
    yield monkeypatch
    monkeypatch.undo()
    importlib.reload(system)


def test_chromium_path_defaults_to_debians_and_is_overridable(
    reloaded: pytest.MonkeyPatch,
) -> None:
    reloaded.delenv("LIVEHUB_CHROMIUM", raising=False)
    assert importlib.reload(system).CHROMIUM == "/usr/bin/chromium"
    reloaded.setenv("LIVEHUB_CHROMIUM", "/opt/chromium/chrome")
    assert importlib.reload(system).CHROMIUM == "/opt/chromium/chrome"


@pytest.mark.usefixtures("strict")
def test_require_janus_returns_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    janus = str(executable(tmp_path / "janus"))
    monkeypatch.setattr(system, "JANUS", janus)
    assert system.require_janus() == janus


@pytest.mark.usefixtures("lenient")
def test_require_janus_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system, "JANUS", str(tmp_path / "missing"))
    with pytest.raises(pytest.skip.Exception) as outcome:
        system.require_janus()
    assert outcome.value.msg == f"needs Janus ({tmp_path / 'missing'}): apt-get install janus"


@pytest.mark.usefixtures("lenient")
def test_require_netns_names_the_first_thing_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def which(name: str) -> str | None:
        return f"/usr/sbin/{name}"

    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception) as outcome:
        system.require_netns()
    assert outcome.value.msg == "needs ip (iproute2): apt-get install iproute2"

    monkeypatch.setattr(system.shutil, "which", which)
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception) as outcome:
        system.require_netns()
    assert outcome.value.msg == "needs root, for network namespaces: run the tests as root"

    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system, "_namespace_probe", lambda: "ip netns add x: Permission denied")
    with pytest.raises(pytest.skip.Exception) as outcome:
        system.require_netns()
    assert outcome.value.msg == (
        "needs network namespaces with veth (ip netns add x: Permission denied): "
        "a kernel with network namespaces and veth"
    )

    monkeypatch.setattr(system, "_namespace_probe", lambda: None)
    system.require_netns()  # neither skips nor fails


def test_janus_path_defaults_to_debians_and_is_overridable(
    reloaded: pytest.MonkeyPatch,
) -> None:
    reloaded.delenv("LIVEHUB_JANUS", raising=False)
    assert importlib.reload(system).JANUS == "/usr/bin/janus"
    reloaded.setenv("LIVEHUB_JANUS", "/opt/janus/bin/janus")
    assert importlib.reload(system).JANUS == "/opt/janus/bin/janus"
