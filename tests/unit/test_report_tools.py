"""Where the Allure report tools are found, and the installer that ships in the package.

Fake executables in temporary folders: nothing here needs Allure, Java, npm or a network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil import htmlreport
from hil.htmlreport import (
    ALLURE_BIN_ENV,
    INSTALL_HINT,
    INSTALLER,
    TOOLS_DIR_ENV,
    ReportError,
    check_report_tools,
    find_allure,
    install_report_tools,
    user_tools_dir,
)


def executable(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def tools_folder(folder: Path) -> Path:
    """A tools folder as npm leaves it; returns the allure in it."""
    return executable(folder / "node_modules" / ".bin" / "allure")


@pytest.fixture
def places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Every place the lookup knows, each with an allure in it, in lookup order."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.chdir(work)
    java_home = tmp_path / "jdk"
    executable(java_home / "bin" / "java")
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    path_dir = tmp_path / "bin"
    found = {
        ALLURE_BIN_ENV: executable(tmp_path / "chosen" / "allure"),
        TOOLS_DIR_ENV: tools_folder(tmp_path / "env-tools"),
        "./.tools": tools_folder(work / ".tools"),
        "per-user": tools_folder(home / ".local" / "share" / "pos-hil" / "tools"),
        "PATH": executable(path_dir / "allure", "echo 2.46.1"),
    }
    monkeypatch.setenv(ALLURE_BIN_ENV, str(found[ALLURE_BIN_ENV]))
    monkeypatch.setenv(TOOLS_DIR_ENV, str(tmp_path / "env-tools"))
    monkeypatch.setenv("PATH", str(path_dir))
    return found


def test_lookup_order_first_match_wins(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for place, allure in places.items():
        assert find_allure() == allure, place
        # Take this place away; the next one must be found.
        if place == ALLURE_BIN_ENV:
            monkeypatch.delenv(ALLURE_BIN_ENV)
        elif place == TOOLS_DIR_ENV:
            monkeypatch.delenv(TOOLS_DIR_ENV)
        else:
            allure.unlink()
    with pytest.raises(ReportError, match="Allure 2 command line not found") as err:
        find_allure()
    message = str(err.value)
    assert str(Path.cwd() / ".tools") in message
    assert str(user_tools_dir()) in message
    assert INSTALL_HINT in message


def test_an_empty_tools_dir_from_the_environment_is_passed_over(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ALLURE_BIN_ENV)
    monkeypatch.setenv(TOOLS_DIR_ENV, str(tmp_path / "nothing-here"))
    assert find_allure() == places["./.tools"]


def test_allure_on_path_must_be_allure_2(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (ALLURE_BIN_ENV, TOOLS_DIR_ENV):
        monkeypatch.delenv(variable)
    places["./.tools"].unlink()
    places["per-user"].unlink()
    executable(places["PATH"], "echo 3.0.0")
    with pytest.raises(ReportError, match=r"is not Allure 2"):
        find_allure()


def test_per_user_folder_follows_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert user_tools_dir() == tmp_path / "data" / "pos-hil" / "tools"
    for ignored in ("", "relative/data"):  # the XDG spec: fall back to the default
        monkeypatch.setenv("XDG_DATA_HOME", ignored)
        assert user_tools_dir() == tmp_path / "home" / ".local" / "share" / "pos-hil" / "tools"


def test_missing_tools_name_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    for variable in (ALLURE_BIN_ENV, TOOLS_DIR_ENV, "XDG_DATA_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReportError, match=f"run `{INSTALL_HINT}`"):
        check_report_tools()


# --------------------------------------------------------------------------------------
# install_report_tools: the shipped installer, with a fake npm
# --------------------------------------------------------------------------------------

FAKE_NPM = """\
prefix=""
while [ $# -gt 0 ]; do [ "$1" = "--prefix" ] && prefix="$2"; shift; done
if [ -n "$NPM_FAILS" ]; then echo "npm ERR! $NPM_FAILS" >&2; exit 1; fi
pkg="$prefix/node_modules/allure-commandline"
mkdir -p "$pkg" "$prefix/node_modules/.bin"
printf '{\\n  "name": "allure-commandline",\\n  "version": "2.46.1"\\n}\\n' > "$pkg/package.json"
printf '#!/bin/sh\\necho 2.46.1\\n' > "$prefix/node_modules/.bin/allure"
chmod +x "$prefix/node_modules/.bin/allure"
"""


@pytest.fixture
def fake_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """npm that "installs" allure-commandline offline, and a Java that works."""
    fake_bin = tmp_path / "fake-bin"
    executable(fake_bin / "npm", FAKE_NPM)
    java_home = tmp_path / "jdk"
    executable(java_home / "bin" / "java")
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")


def test_the_installer_ships_inside_the_package() -> None:
    assert INSTALLER.is_file()
    assert INSTALLER.parent == Path(htmlreport.__file__).parent / "tools"


def test_install_into_a_tools_folder_returns_its_allure(fake_npm: None, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    allure = install_report_tools(tools)
    assert allure == tools.resolve() / "node_modules" / ".bin" / "allure"
    assert find_allure(tools) == allure
    assert install_report_tools(tools) == allure  # again: already there, nothing to do


def test_install_failure_is_the_installers_one_line_reason(
    fake_npm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPM_FAILS", "network unreachable")
    with pytest.raises(ReportError) as err:
        install_report_tools(tmp_path / "tools")
    message = str(err.value)
    assert message.startswith(f"cannot install the report tools into {tmp_path / 'tools'}: ")
    # The installer's reason, with the npm line it points to ("see above").
    assert message.endswith(
        "npm install allure-commandline@2.46.1 failed: npm ERR! network unreachable"
    )
    assert "\n" not in message
