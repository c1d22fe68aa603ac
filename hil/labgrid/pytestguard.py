"""Keep labgrid's own pytest plugin out of runs it would crash.

Installing labgrid registers its pytest plugin (entry point ``pytest11: labgrid``) in
every pytest run of the environment. That plugin reads pytest's ``-v`` option in
``pytest_cmdline_main``, an option that exists only with pytest's terminal plugin;
``hil run`` turns the terminal plugin off (it draws its own progress), so with the
labgrid extra installed every ``hil run`` stopped with "no option named 'verbose'"
(exit 70). pos-hil uses labgrid as a library, never its plugin, so in a run without
the terminal plugin the labgrid plugin is unregistered before it is configured.
Other pytest runs (a lab's own labgrid suites in the same environment) keep it.
"""

from __future__ import annotations

import pytest

LABGRID_PLUGIN = "labgrid"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    manager = early_config.pluginmanager
    if manager.is_blocked("terminal") and manager.get_plugin(LABGRID_PLUGIN) is not None:
        manager.unregister(name=LABGRID_PLUGIN)
