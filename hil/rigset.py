"""Several rigs, one run: ``hil run --rigs`` (docs/parallel-rigs.md).

pytest-xdist starts one worker per rig. Each worker is a whole pos-hil session of its
own: it starts its rig (``gwK`` takes the K-th rig), runs the scenarios it is given and
writes its reports into ``<run folder>/rigs/<rig label>/`` exactly as a single-rig run
writes them (summary.json, junit.xml, allure-results/), through the same PAN gate.

The controller (the process ``hil run`` started) runs no scenario and owns no rig. It
merges: after every scenario it reads the workers' summaries and rewrites the run's
summary.json and junit.xml (still saying the run is incomplete until it ends), prints
the live progress with the rig that ran each scenario, and at the end copies every
worker's Allure results into the run's allure-results with the rig as a label (and as a
parameter with ``--each``, where one scenario has a result per rig). The exit code is
decided from the merged summary, by the same rules as a single rig's.

Two ways to use the rigs:

- **shard** (default): the scenarios are handed out to whichever rig is free (xdist's
  ``load`` scheduling); each runs once. The rigs must be equivalent (the same terminal
  model and firmware): the report's environment lists each rig's values, joined.
- **each** (``--each``): every rig runs the whole selection (xdist's ``each``): a
  terminal-model or firmware matrix in one report, one entry per scenario and rig.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.archive import merged_environment, rig_as_parameter
from hil.errors import ConfigError
from hil.masking import mask_text
from hil.summary import RunFacts, RunSummary, pending_entry

#: More workers than this on one machine is a mistake, not a lab.
MAX_RIGS = 32
#: Where the workers' own reports go, under the run folder.
RIGS_FOLDER = "rigs"
#: Per worker: the full failure text of each test (junit.xml's detail), masked.
DETAILS_FILE = "details.json"
_DISPLAY_SEPARATOR = "\0"
#: A worker's run-wide Allure files: the run writes its own.
_RUN_WIDE_FILES = frozenset(("environment.properties", "categories.json", "executor.json"))


@dataclass(frozen=True)
class RigSlot:
    """One rig of a run over several rigs: the K-th worker (``gwK``) drives it."""

    index: int
    #: how the reports name it: the rig file's stem, numbered when several share one
    label: str
    path: Path


def rig_slots(spec: str, default_rig: Path) -> list[RigSlot]:
    """The rigs ``--rigs SPEC`` names: a number N (N copies of ``default_rig``, each its
    own terminal: for rigs that start their terminal, such as the sim), or rig files
    and globs separated by commas (``rigs/lab/*.toml``). A ConfigError names what is
    wrong."""
    text = spec.strip()
    paths: list[Path] = []
    if text.isdigit():
        paths = [default_rig] * int(text)
    else:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if glob.has_magic(part):
                matched = sorted(Path(p) for p in glob.glob(part) if Path(p).is_file())
                if not matched:
                    raise ConfigError(f"--rigs: {part!r} matches no rig file")
                paths.extend(matched)
            else:
                paths.append(Path(part))
    if not paths:
        raise ConfigError(f"--rigs: {spec!r} names no rig (a number, or rig files and globs)")
    if len(paths) > MAX_RIGS:
        raise ConfigError(f"--rigs: {len(paths)} rigs; at most {MAX_RIGS} in one run")
    stems = [mask_text(path.stem) for path in paths]
    labels = []
    for index, stem in enumerate(stems):
        shared = stems.count(stem) > 1
        labels.append(f"{stem}-{stems[: index + 1].count(stem)}" if shared else stem)
    pairs = zip(labels, paths, strict=True)
    return [RigSlot(index, label, path) for index, (label, path) in enumerate(pairs)]


def encode_slots(slots: list[RigSlot]) -> str:
    """The slots as the plug-in option ``--hil-rigs`` carries them to every worker."""
    return json.dumps([[slot.label, str(slot.path)] for slot in slots])


def decode_slots(text: str) -> list[RigSlot]:
    try:
        pairs = json.loads(text)
        return [RigSlot(i, str(label), Path(path)) for i, (label, path) in enumerate(pairs)]
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--hil-rigs: not a list of [label, rig file] pairs: {e}") from None


def slot_of_worker(slots: list[RigSlot], worker_id: str) -> RigSlot:
    """The rig of xdist worker ``gwK``: the K-th. More workers than rigs is an error
    (a worker a crash replaced gets a new number: hil runs with no restarts)."""
    index = int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else -1
    if not 0 <= index < len(slots):
        raise ConfigError(f"--hil-rigs: worker {worker_id} has no rig ({len(slots)} rigs given)")
    return slots[index]


def slot_folder(run_folder: Path, slot: RigSlot) -> Path:
    return run_folder / RIGS_FOLDER / slot.label


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not written yet (the worker has not started), or being replaced


class RigSetSummary(RunSummary):
    """The run's summary over every rig, made from the workers' summaries.

    The runs of each worker become the runs of this summary (keyed by node ID, and by
    rig too with ``--each``), so the reports, the aggregation of repeats and the exit
    code are the single-rig run's own code."""

    # refresh() puts new entries in place of changed ones (_runs_of_worker) and never
    # changes one in place.
    ENTRIES_REPLACED = True

    def __init__(
        self,
        run_id: str,
        slots: list[RigSlot],
        run_folder: Path,
        *,
        each: bool,
        environment: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        super().__init__(run_id, environment)
        self.slots = slots
        self.run_folder = run_folder
        self.each = each
        #: run key -> the rig that ran it
        self.rig_of: dict[str, str] = {}
        #: the test node IDs the workers collected (the first to report)
        self.collected: list[str] | None = None
        #: rig label -> the worker's summary as last read
        self.worker_summaries: dict[str, dict[str, Any]] = {}
        #: workers that died (one line each): a framework bug, never the terminal
        self.worker_deaths: list[str] = []
        # What the workers' summaries list as errors (prefixed with the rig), as against
        # what this process recorded itself (collection errors, a stop).
        self._worker_errors: list[str] = []
        self._worker_deselected = 0
        #: run keys set up and not yet torn down on their rig
        self.under_way: set[str] = set()
        #: test node ID -> the rig whose worker last reported on it
        self.last_rig: dict[str, str] = {}
        # The reports are rewritten after every scenario: a worker's files are parsed
        # again only when they changed, a pending entry is masked once, and the scenario
        # list is made once per refresh (summary.json, junit and the progress share it).
        self._read: dict[str, tuple[tuple[int, int, int], dict[str, Any], dict[str, Any]]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._worker_runs: dict[
            str,
            tuple[
                dict[str, Any],
                dict[str, Any],
                list[tuple[str, dict[str, Any], RunFacts, str | None]],
            ],
        ] = {}
        self._generation = 0
        self._scenarios_made: tuple[tuple[int, str], list[tuple[str, dict[str, Any]]]] | None = None

    def key(self, nodeid: str, label: str) -> str:
        return f"{nodeid}{_DISPLAY_SEPARATOR}{label}" if self.each else nodeid

    # --- what the workers say ---------------------------------------------------------

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.collected is None:
            self.collected = list(ids)
            self.total = len(ids) * (len(self.slots) if self.each else 1)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        """The controller collects the features too, while the workers start (xdist has
        spawned them by now): a syntax error, an unknown step or tag, or a selection
        that matches nothing stops the run here with the single-rig messages and exit 2,
        before any rig starts or any report is touched. Its items are not run; the
        workers' own collections are what the scenarios are handed out from. The step
        library is imported here, not when the session was configured, so the workers
        were started that much sooner."""
        from hil.plugin import import_step_library

        import_step_library(session.config)
        session.perform_collect()
        if session.testsfailed:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        if not session.items:
            raise session.Interrupted("no scenario selected")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The controller's own collection is a check; the run's count and fingerprint
        come from the workers."""

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        if error is not None:
            label = self.label_of_node(node)
            self.worker_deaths.append(f"rig {label}: its worker process died: {error}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Which runs are under way on which rig (an interruption cuts them short)."""
        node = getattr(report, "node", None)
        if node is None:
            return
        label = self.label_of_node(node)
        self.last_rig[report.nodeid] = label
        key = self.key(report.nodeid, label)
        if report.when == "setup":
            self.under_way.add(key)
        elif report.when == "teardown":
            self.under_way.discard(key)

    def label_of_node(self, node: Any) -> str:
        worker_id = str(getattr(getattr(node, "gateway", None), "id", "?"))
        try:
            return slot_of_worker(self.slots, worker_id).label
        except ConfigError:
            return worker_id

    def refresh(self) -> None:
        """Read every worker's summary (and failure details) as they stand now."""
        results: dict[str, dict[str, Any]] = {}
        facts: dict[str, RunFacts] = {}
        details: dict[str, str] = {}
        rig_of: dict[str, str] = {}
        errors: list[str] = []
        deselected = 0
        own = [e for e in self.errors if e not in self._worker_errors]
        for slot in self.slots:
            read = self._read_worker(slot)
            if read is None:
                continue
            data, worker_details = read
            errors.extend(
                f"rig {slot.label}: {error}" for error in data.get("errors", []) if error not in own
            )
            deselected = max(deselected, int(data.get("deselected", 0)))
            for key, entry, run_facts, detail in self._runs_of_worker(slot, data, worker_details):
                if entry["outcome"] == "not run" and key in results:
                    continue  # in shards, the rig that did run it says how it went
                results[key] = entry
                facts[key] = run_facts
                rig_of[key] = slot.label
                if detail is not None:
                    details[key] = detail
        # What no worker has reported yet is pending, in the order the workers collected.
        ordered: dict[str, dict[str, Any]] = {}
        for nodeid in self.collected or []:
            for slot in self.slots if self.each else self.slots[:1]:
                key = self.key(nodeid, slot.label)
                if key in results:
                    ordered[key] = results.pop(key)
                    continue
                pending = self._pending.get(key)
                if pending is None:  # masked once: most of a run's entries start so
                    pending = pending_entry(nodeid, nodeid.rpartition("::")[2])
                    self._pending[key] = pending
                ordered[key] = pending
                facts.setdefault(key, RunFacts(scenario=key, repeat=1))
        ordered.update(results)  # runs not in the first collection (none, normally)
        self.results, self.facts, self.details, self.rig_of = ordered, facts, details, rig_of
        self._worker_errors = list(dict.fromkeys(errors))
        self.errors = [*own, *self._worker_errors]
        self._worker_deselected = deselected

        self._generation += 1

    def _runs_of_worker(
        self, slot: RigSlot, data: dict[str, Any], worker_details: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], RunFacts, str | None]]:
        """Each run a worker's summary lists, as this summary's entry, facts and failure
        details; made again only when the worker's files were read again (they changed),
        so an unchanged run keeps its entry object and what was made of it is kept too."""
        made = self._worker_runs.get(slot.label)
        if made is not None and made[0] is data and made[1] is worker_details:
            return made[2]
        runs = []
        for scenario in data.get("scenarios", []):
            for run in scenario.get("repeats", []):
                blame = run["blame"]
                entry = {
                    "nodeid": run["nodeid"],
                    "feature": scenario["feature"],
                    "scenario": scenario["scenario"],
                    "outcome": run["outcome"],
                    "blame": blame,
                    "rig_fault": blame == "rig",
                    "config_error": blame == "config",
                    "framework_error": blame == "framework",
                    "message": run["message"],
                    "duration_s": run["duration_s"],
                    "measurements": run["measurements"],
                }
                run_facts = RunFacts(
                    scenario=self.key(scenario["nodeid"], slot.label),
                    repeat=int(run["repeat"]),
                    requirements=tuple(scenario.get("requirements", ())),
                    tags=tuple(scenario.get("tags", ())),
                )
                nodeid = run["nodeid"]
                detail = str(worker_details[nodeid]) if nodeid in worker_details else None
                runs.append((self.key(nodeid, slot.label), entry, run_facts, detail))
        self._worker_runs[slot.label] = (data, worker_details, runs)
        return runs

    def _read_worker(self, slot: RigSlot) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A worker's summary and failure details, read again only when its summary
        file changed (one worker's changes with each scenario, not all of them)."""
        folder = slot_folder(self.run_folder, slot)
        try:
            stat = (folder / "summary.json").stat()
        except OSError:
            return None  # not written yet: the worker has not started its run
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._read.get(slot.label)
        if cached is not None and cached[0] == seen:
            return cached[1], cached[2]
        data = _read_json(folder / "summary.json")
        if not isinstance(data, dict):
            return None if cached is None else (cached[1], cached[2])
        details = _read_json(folder / DETAILS_FILE)
        details = details if isinstance(details, dict) else {}
        self._read[slot.label] = (seen, data, details)
        self.worker_summaries[slot.label] = data
        return data, details

    @property
    def deselected(self) -> int:
        # The controller's own collection knows it too when no worker has said it yet
        # (a selection that matched nothing stops the run before they do).
        return max(self._worker_deselected, super().deselected)

    # --- the run's life -----------------------------------------------------------------

    def start(self) -> None:
        self.started = time.time()
        self.status = "running"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.status != "running":
            return
        self.refresh()
        self.ended = time.time()
        statuses = {
            slot.label: str(self.worker_summaries.get(slot.label, {}).get("status", "not started"))
            for slot in self.slots
        }
        if self._interrupted or "interrupted" in statuses.values():
            self.status = "interrupted"
            if not self.ended_by:
                self.ended_by = "interrupted"
        elif self.worker_deaths or any(e["outcome"] == "pending" for e in self.results.values()):
            self.status = "stopped"
            stopped = [
                f"rig {label}: {self.worker_summaries[label].get('ended_by') or status}"
                for label, status in statuses.items()
                if status not in ("finished", "not started")
            ]
            reasons = [*self.worker_deaths, *stopped]
            self.ended_by = f"stopped: {'; '.join(reasons)}" if reasons else "stopped"
        else:
            self.status = "finished"

    # --- what the reports say -----------------------------------------------------------

    def _shown(self) -> list[tuple[str, dict[str, Any]]]:
        """As a single rig's, with every run a rig was in the middle of when the run was
        interrupted shown as interrupted (not as never run)."""
        shown = super()._shown()
        if self.status != "interrupted":
            return shown
        return [
            (key, {**entry, "outcome": "interrupted"})
            if entry["outcome"] == "not run" and key in self.under_way
            else (key, entry)
            for key, entry in shown
        ]

    def _scenarios(self) -> list[tuple[str, dict[str, Any]]]:
        made_for = (self._generation, self.status)
        if self._scenarios_made is not None and self._scenarios_made[0] == made_for:
            return self._scenarios_made[1]
        shown = self._merged_scenarios()
        self._scenarios_made = (made_for, shown)
        return shown

    def _merged_scenarios(self) -> list[tuple[str, dict[str, Any]]]:
        rigs_of: dict[str, dict[str, None]] = {}
        for run, facts in self.facts.items():
            if run in self.rig_of:
                rigs_of.setdefault(facts.scenario, {})[self.rig_of[run]] = None
        shown = []
        for key, entry in super()._scenarios():
            nodeid, _, label = key.partition(_DISPLAY_SEPARATOR)
            rigs = label or ", ".join(rigs_of.get(key, {}))
            shown.append((key, {**entry, "nodeid": mask_text(nodeid), "rig": rigs}))
        return shown

    def _as_dict(self, scenarios: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        data = super()._as_dict(scenarios)
        # Said in ended_by; counted as what it is: not the lab's input, not the terminal.
        data["framework_errors"] += len(self.worker_deaths)
        data["rigs"] = [
            {
                "label": slot.label,
                "rig_file": str(slot.path),
                "status": self.worker_summaries.get(slot.label, {}).get("status", "not started"),
                "counts": self.worker_summaries.get(slot.label, {}).get("counts", {}),
                "reports": str(slot_folder(self.run_folder, slot)),
            }
            for slot in self.slots
        ]
        data["rig_mode"] = "each" if self.each else "shard"
        return data

    def environment(self) -> dict[str, str]:
        """Each value once; the rigs' differing values joined with `` | ``."""
        environment = merged_environment(
            data.get("environment", {}) for data in self.worker_summaries.values()
        )
        own = super().environment()
        for key in ("run_id", "started", "ended"):
            if key in own:
                environment[key] = own[key]
            else:
                environment.pop(key, None)
        environment["rigs"] = ", ".join(slot.label for slot in self.slots)
        return environment

    def _junit_case(self, nodeid: str, recorded: dict[str, Any]) -> Any:
        made = super()._junit_case(nodeid, recorded)
        if made is None:
            return None
        outcome, case = made
        label = self.rig_of.get(nodeid)
        if label is not None and case.find("properties") is None:
            import xml.etree.ElementTree as ET

            properties = ET.Element("properties")
            ET.SubElement(properties, "property", name="rig", value=label)
            case.insert(0, properties)
            if self.each:
                case.set("classname", f"{case.get('classname')} @ {label}")
        return outcome, case


class AllureMerge:
    """Every worker's Allure results into the run's folder, as the run goes: each result
    labelled with its rig (``rig``, and its timeline lane); with ``--each`` the rig is
    also a parameter, so each rig's result of a scenario stands on its own. The workers'
    run-wide files (environment, categories, their "incomplete" marker) are not taken:
    the run writes its own.

    ``sweep()`` after each scenario takes what is new (a killed run's folder holds what
    had ended, and the end of the run has little left to do); ``sweep(final=True)`` at
    the end also takes again what changed since (a result restated by its worker).
    Attachments are hard links where the file system allows (written once, already
    masked by the worker's gate, and often most of the bytes), copies elsewhere."""

    def __init__(self, summary: RigSetSummary, into: Path) -> None:
        self.summary = summary
        self.into = into
        #: worker file (its path) -> (inode, size, mtime) when it was taken: the workers
        #: write every file anew (hil.reporting.write_atomically), so a change is a new inode
        self._taken: dict[str, tuple[int, int, int]] = {}
        self._results = 0

    def sweep(self, *, final: bool = False) -> int:
        """Take what is new (and, ``final``, what changed); returns how many test results
        the run's folder holds from the workers."""
        from hil.reporting import run_marker_path

        self.into.mkdir(parents=True, exist_ok=True)
        for slot in self.summary.slots:
            results = slot_folder(self.summary.run_folder, slot) / "allure-results"
            try:
                entries = list(os.scandir(results))
            except OSError:
                continue  # the worker has written nothing yet
            marker = run_marker_path(results, self.summary.run_id).name
            for entry in entries:
                if entry.name in _RUN_WIDE_FILES or entry.name == marker:
                    continue
                if entry.name.startswith("."):
                    continue  # a file being written (write_atomically): its own name comes
                taken = self._taken.get(entry.path)
                if taken is not None and not final:
                    continue
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                if not entry.is_file() or taken == seen:
                    continue
                if self._take(Path(entry.path), slot.label, first=taken is None):
                    self._taken[entry.path] = seen
        return self._results

    def _take(self, path: Path, label: str, *, first: bool) -> bool:
        from hil.reporting import write_atomically

        target = self.into / path.name
        if path.name.endswith("-result.json"):
            try:
                labelled = _labelled(path, label, self.summary.each)
            except (OSError, ValueError):
                return False  # not readable as it stands: taken at a later sweep
            if first:
                self._results += 1
            write_atomically(target, labelled)
            return True
        target.unlink(missing_ok=True)
        # A file gone since it was listed (replaced by its worker) is for a later sweep.
        try:
            os.link(path, target)
        except FileNotFoundError:
            return False
        except OSError:  # another file system, or links not allowed: a copy
            try:
                shutil.copyfile(path, target)
            except FileNotFoundError:
                return False
        return True


def _labelled(path: Path, label: str, as_parameter: bool) -> bytes:
    data = json.loads(path.read_text(encoding="utf-8"))
    labels = [item for item in data.get("labels", []) if item.get("name") not in ("rig", "thread")]
    data["labels"] = [*labels, {"name": "rig", "value": label}, {"name": "thread", "value": label}]
    if as_parameter:
        rig_as_parameter(data, label)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")
