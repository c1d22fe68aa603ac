"""``hil init DIR``: a lab project that runs as it is.

The project is a copy of the suite that ships with pos-hil (hil.suite): the features,
the sim rig file and the test data it names, laid out the same way so the rig file's
relative paths hold, plus a pytest.ini (so plain ``pytest`` collects the features too)
and a README saying what to change first. Nothing is linked back into the installed
package: the lab owns and edits every file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hil.errors import ConfigError
from hil.suite import DEFAULT_RIG, FEATURES, FIXTURES

#: Fixture folders the default rig file names. QR payloads are not among them: the
#: QR steps read pos-hil's own set by name, so a copy would only mislead.
FIXTURE_FOLDERS = ("cards", "firmware", "host")

#: Never copied: the key that signs the test images (a lab has its own signing).
LEFT_OUT = ("*.pem",)

PYTEST_INI = """\
# Plain `pytest` runs the features here too (hil run needs none of this).
[pytest]
hil_features = true
testpaths = features
"""

README = """\
# {name}: a pos-hil lab project

Made by `hil init`. It runs as it is, on pos-hil's simulated terminal:

    hil rig check      # every instrument answers, one line each
    hil run            # the self-check suite; reports in reports/

- `rigs/sim.toml` is the rig: the simulated terminal and every instrument. Copy it
  for a bench (`rigs/bench.toml`), switch `[dut] driver = "physical"`, point
  `[console] url` at the terminal's test port and pick power and instrument drivers
  (pos-hil's docs/rig-files.md); run it with `hil run --rig rigs/bench.toml`.
- `features/` holds the self-check features; edit them or add your own. `hil steps`
  lists every step phrase pos-hil knows. Step definitions of your own go in a
  `conftest.py` here.
- `fixtures/` holds the synthetic test data the rig file names: card profiles, host
  parameter and key sets, the signed firmware images of the simulated terminal.
- Drivers for your own hardware live in a package of yours (pos-hil's
  docs/writing-a-driver.md).
"""


class ScaffoldError(ConfigError):
    """The folder cannot take a new project (exit 2)."""


def scaffold(folder: Path) -> list[Path]:
    """Write the project into ``folder`` (absent or empty); returns the files written."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder}: exists and is not an empty folder; pick a new one")
    ignore = shutil.ignore_patterns(*LEFT_OUT, "__pycache__")
    shutil.copytree(FEATURES, folder / "features", ignore=ignore, dirs_exist_ok=True)
    for name in FIXTURE_FOLDERS:
        shutil.copytree(FIXTURES / name, folder / "fixtures" / name, ignore=ignore)
    (folder / "rigs").mkdir()
    shutil.copy(DEFAULT_RIG, folder / "rigs" / "sim.toml")
    (folder / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    (folder / "README.md").write_text(README.format(name=folder.name), encoding="utf-8")
    return sorted(path for path in folder.rglob("*") if path.is_file())
