"""The acquirer host simulator: ISO 8583 over TCP, scriptable per scenario.

It answers network management (0800: sign-on, echo test, parameter download, key
download), sale (0200), reversal (0400) and settlement (0500) as docs/host.md
describes, and records every message in and out, masked. A scenario changes how it
answers with ``behave``: approve, decline with any response code, delay, never
answer, close mid-response, or answer with a malformed message, for one kind of
transaction or all, optionally after skipping some and for a number of times only.

Runs on its own asyncio loop thread; every public method is synchronous and
thread-safe, so it works from steps, instruments and plain scripts alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hil.host.downloads import KeySet, ParameterSet, default_key_set, wrap_keys
from hil.host.iso8583 import Frame, Iso8583Error, decode_body, encode, response_header
from hil.host.records import MessageRecord, masked_fields, original_stan
from hil.host.registry import TerminalRegistry
from hil.tcpservice import ClientConnection, TcpService

log = logging.getLogger(__name__)

Transaction = Literal[
    "sign_on",
    "echo",
    "parameter_download",
    "key_download",
    "sale",
    "reversal",
    "settlement",
    "unknown",
]
TRANSACTIONS: tuple[str, ...] = (
    "sign_on",
    "echo",
    "parameter_download",
    "key_download",
    "sale",
    "reversal",
    "settlement",
)

#: Field 60 network management information codes (its last 3 digits), per docs/host.md.
NETWORK_CODES: dict[str, str] = {
    "001": "sign_on",
    "301": "echo",
    "350": "key_download",
    "360": "parameter_download",  # one block; field 62 of the request = block index
    "361": "parameter_download",  # end of download; the answer carries the digest
}

RC_APPROVED = "00"
RC_INVALID_TRANSACTION = "12"
RC_FORMAT_ERROR = "30"
RC_RECONCILE_ERROR = "95"
#: A reversal for a sale the host never saw is still acknowledged (nothing to undo).
RC_ORIGINAL_NOT_FOUND = "25"

BehaviourKind = Literal[
    "normal", "decline", "delay", "never_answer", "close_mid_response", "malformed", "corrupt"
]
MALFORMED_BODY = b"\x60\x00\x00\x00\x00" + b"\xee" * 27  # a TPDU, then no valid MTI/bitmap


@dataclass(frozen=True)
class Behaviour:
    """How the host answers. ``delay_s`` applies before any kind of answer."""

    kind: BehaviourKind = "normal"
    response_code: str = ""
    delay_s: float = 0.0

    @classmethod
    def normal(cls) -> Behaviour:
        """Process the message as a healthy host would (approve what is valid)."""
        return cls("normal")

    @classmethod
    def decline(cls, response_code: str) -> Behaviour:
        if len(response_code) != 2 or not response_code.isascii() or not response_code.isalnum():
            raise ValueError(f"response code must be 2 alphanumeric characters: {response_code!r}")
        return cls("decline", response_code)

    @classmethod
    def delay(cls, seconds: float) -> Behaviour:
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        return cls("normal", delay_s=seconds)

    @classmethod
    def never_answer(cls) -> Behaviour:
        return cls("never_answer")

    @classmethod
    def close_mid_response(cls) -> Behaviour:
        return cls("close_mid_response")

    @classmethod
    def malformed(cls) -> Behaviour:
        return cls("malformed")

    @classmethod
    def corrupt(cls) -> Behaviour:
        """Answer with the last byte of the download data (field 62) flipped: a parameter
        block or digest, or a key block, that arrives damaged but well framed."""
        return cls("corrupt")

    def describe(self) -> str:
        text = self.kind + (f" {self.response_code}" if self.response_code else "")
        return text + (f" after {self.delay_s:g} s" if self.delay_s else "")


@dataclass
class _Rule:
    transaction: str  # a TRANSACTIONS name or "any"
    behaviour: Behaviour
    skip: int = 0
    times: int | None = None  # None = until reset


@dataclass
class Sale:
    """One sale in the host's journal (amounts in minor units)."""

    terminal_id: str
    stan: str
    amount: int
    rrn: str
    response_code: str
    reversals: int = 0
    settled: bool = False

    @property
    def counts(self) -> bool:
        return self.response_code == RC_APPROVED and self.reversals == 0 and not self.settled


@dataclass
class _Connection:
    number: int
    parameters: ParameterSet | None = None  # snapshot for one download
    flags: dict[str, Any] = field(default_factory=dict)


class HostSimulator(TcpService):
    """An acquirer host on ``address:port`` (loopback by default; port 0 = ephemeral)."""

    def __init__(
        self,
        parameters: ParameterSet,
        *,
        keys: KeySet | None = None,
        registry: TerminalRegistry | None = None,
        address: str = "127.0.0.1",
        port: int = 0,
        name: str = "host",
    ) -> None:
        super().__init__(
            listen=(address, port),
            name=name,
            description="host simulator",
            thread_name=f"hil-{name}",
        )
        self._initial_parameters = parameters
        self._parameters = parameters
        self.keys = keys or default_key_set()
        self.registry = registry or TerminalRegistry()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._rules: list[_Rule] = []
        self._records: list[MessageRecord] = []
        self._journal: list[Sale] = []
        self._seq = itertools.count(1)
        self._rrn = itertools.count(1)
        self._started = time.monotonic()

    # --- scripting ---------------------------------------------------------------

    def behave(
        self, transaction: str, behaviour: Behaviour, *, skip: int = 0, times: int | None = None
    ) -> None:
        """Answer ``transaction`` ("any" for all) with ``behaviour``; the newest rule wins.

        ``skip`` messages of that kind are answered normally first; ``times`` limits
        how many get the behaviour (None: until ``reset``)."""
        if transaction != "any" and transaction not in TRANSACTIONS:
            raise ValueError(f"unknown transaction {transaction!r}; known: {TRANSACTIONS}")
        with self._lock:
            self._rules.insert(0, _Rule(transaction, behaviour, skip, times))

    def set_parameters(self, parameters: ParameterSet) -> None:
        with self._lock:
            self._parameters = parameters

    @property
    def parameters(self) -> ParameterSet:
        with self._lock:
            return self._parameters

    def reset(self) -> None:
        """Back to the configured state: normal answers, rig-file registry and
        parameters, empty journal. Records are kept until ``clear_records``."""
        with self._lock:
            self._rules.clear()
            self._parameters = self._initial_parameters
            self._journal.clear()
        self.registry.reset()

    # --- observation -------------------------------------------------------------

    def records(self) -> list[MessageRecord]:
        with self._lock:
            return list(self._records)

    def clear_records(self) -> None:
        with self._lock:
            self._records.clear()

    def journal(self) -> list[Sale]:
        with self._lock:
            return [replace(s) for s in self._journal]

    def wait_for(
        self, predicate: Callable[[list[MessageRecord]], bool], timeout: float
    ) -> list[MessageRecord]:
        """Wait until ``predicate(records)`` holds; returns the records. TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._records)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"host: condition not met within {timeout:g} s")
                self._changed.wait(remaining)
            return list(self._records)

    # --- the server --------------------------------------------------------------

    def _record(
        self,
        conn: _Connection,
        direction: str,
        frame: Frame | None,
        transaction: str,
        *,
        response_code: str = "",
        note: str = "",
        flags: dict[str, Any] | None = None,
    ) -> None:
        with self._changed:
            self._records.append(
                MessageRecord(
                    seq=next(self._seq),
                    at_ms=round((time.monotonic() - self._started) * 1000, 1),
                    connection=conn.number,
                    direction=direction,
                    mti=frame.mti if frame else "",
                    transaction=transaction,
                    terminal_id=frame.get("41") if frame else "",
                    fields=masked_fields(frame.fields) if frame else {},
                    response_code=response_code,
                    note=note,
                    flags=dict(flags or {}),
                )
            )
            self._changed.notify_all()

    def _take_behaviour(self, transaction: str) -> Behaviour:
        with self._lock:
            for rule in self._rules:
                if rule.transaction not in ("any", transaction):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return Behaviour.normal()
                if rule.times is not None:
                    if rule.times <= 0:
                        continue
                    rule.times -= 1
                return rule.behaviour
        return Behaviour.normal()

    async def serve_client(
        self, client: ClientConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = _Connection(client.number)
        try:
            while True:
                try:
                    head = await reader.readexactly(2)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                (length,) = struct.unpack(">H", head)
                try:
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError) as e:
                    got = len(e.partial) if isinstance(e, asyncio.IncompleteReadError) else 0
                    self._record(
                        conn, "in", None, "unknown", note=f"truncated: {got} of {length} bytes"
                    )
                    break
                try:
                    frame = decode_body(body)
                except Iso8583Error as e:
                    self._record(conn, "in", None, "unknown", note=f"malformed: {e}")
                    break  # a host drops a link that sends garbage
                if not await self._answer(conn, frame, reader, writer):
                    break
        except Exception:  # one broken connection must not take the host down
            log.exception("host: connection %d failed", conn.number)

    async def _answer(
        self,
        conn: _Connection,
        frame: Frame,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Handle one request; False when the connection must close."""
        transaction = classify(frame)
        behaviour = self._take_behaviour(transaction)
        self._record(
            conn,
            "in",
            frame,
            transaction,
            note=""
            if behaviour.kind == "normal" and not behaviour.delay_s
            else behaviour.describe(),
        )
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        forced = behaviour.response_code if behaviour.kind == "decline" else ""
        mti, fields, flags = self._process(conn, frame, transaction, forced)
        corrupted = behaviour.kind == "corrupt" and bool(fields.get("62"))
        if corrupted:
            data62 = bytearray.fromhex(fields["62"])
            data62[-1] ^= 0xFF
            fields["62"] = data62.hex().upper()
        answer = Frame(response_header(frame.header), mti, fields)
        data = encode(mti, fields, header=answer.header)
        rc = fields.get("39", "")
        if behaviour.kind == "never_answer":
            self._record(
                conn,
                "out",
                answer,
                transaction,
                response_code=rc,
                note="never sent (never_answer)",
                flags=flags,
            )
            # Keep the link open and silent until the terminal gives up.
            with contextlib.suppress(ConnectionError):
                while await reader.read(4096):
                    pass
            return False
        if behaviour.kind == "malformed":
            data = struct.pack(">H", len(MALFORMED_BODY)) + MALFORMED_BODY
            note = f"malformed answer sent instead ({len(data)} bytes)"
            self._record(conn, "out", None, transaction, note=note, flags=flags)
            return await _write(writer, data)
        if behaviour.kind == "close_mid_response":
            half = data[: max(1, len(data) // 2)]
            note = f"closed after {len(half)} of {len(data)} bytes"
            self._record(conn, "out", answer, transaction, response_code=rc, note=note, flags=flags)
            await _write(writer, half)
            return False
        note = "field 62 corrupted (last byte flipped)" if corrupted else ""
        self._record(conn, "out", answer, transaction, response_code=rc, note=note, flags=flags)
        return await _write(writer, data)

    # --- what a healthy host answers -----------------------------------------------

    def _process(
        self, conn: _Connection, frame: Frame, transaction: str, forced: str
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        # 61 (original data) comes back in a reversal's answer, so both sides of the
        # exchange name the sale it undoes.
        echoed = ("3", "4", "11", "41", "42", "60", "61")
        fields: dict[str, str] = {k: frame.fields[k] for k in echoed if k in frame.fields}
        flags: dict[str, Any] = {}
        rc = RC_APPROVED
        tid = frame.get("41")
        if transaction == "sign_on":
            verdict = self.registry.sign_on(tid, frame.get("63"))
            rc = verdict.response_code
            flags = {"bound_serial": verdict.bound_serial, "enrolled": verdict.enrolled}
        elif transaction == "parameter_download":
            rc = forced or self._parameter_block(conn, frame, fields, flags)
        elif transaction == "key_download":
            if not forced:
                fields["62"] = wrap_keys(self.keys).hex().upper()
        elif transaction == "sale":
            rc = forced or RC_APPROVED
            rrn = f"{next(self._rrn):012d}"
            fields["37"] = rrn
            if rc == RC_APPROVED:
                fields["38"] = f"A{int(frame.get('11') or 0):05d}"
            with self._lock:
                self._journal.append(Sale(tid, frame.get("11"), int(frame.get("4") or 0), rrn, rc))
        elif transaction == "reversal":
            rc, flags = self._reverse(frame)
        elif transaction == "settlement":
            rc = self._settle(frame, fields)
        elif transaction == "unknown":
            rc = RC_INVALID_TRANSACTION
        if forced:
            rc = forced
        fields["39"] = rc
        return response_mti(frame.mti), fields, flags

    def _parameter_block(
        self, conn: _Connection, frame: Frame, fields: dict[str, str], flags: dict[str, Any]
    ) -> str:
        if conn.parameters is None:
            conn.parameters = self.parameters  # one download sees one parameter set
        parameters = conn.parameters
        if frame.get("60")[-3:] == "361":
            data = bytes.fromhex(parameters.digest) + parameters.version.encode("utf-8")
            fields["62"] = data.hex().upper()
            flags.update(version=parameters.version, digest=parameters.digest)
            conn.parameters = None
            return RC_APPROVED
        blocks = parameters.blocks()
        try:
            index = int(frame.get("62"), 16)
        except ValueError:
            return RC_FORMAT_ERROR
        if not 0 <= index < len(blocks):
            return RC_FORMAT_ERROR
        fields["62"] = (
            (index.to_bytes(2, "big") + len(blocks).to_bytes(2, "big") + blocks[index])
            .hex()
            .upper()
        )
        flags.update(block=index, blocks=len(blocks), version=parameters.version)
        return RC_APPROVED

    def _reverse(self, frame: Frame) -> tuple[str, dict[str, Any]]:
        tid, stan = frame.get("41"), original_stan(frame.fields)
        with self._lock:
            found = [s for s in self._journal if s.terminal_id == tid and s.stan == stan]
            if not found:
                return RC_APPROVED, {"original_found": False, "duplicate": False}
            sale = found[-1]
            duplicate = sale.reversals > 0
            sale.reversals += 1
        return RC_APPROVED, {"original_found": True, "duplicate": duplicate, "stan": stan}

    def _settle(self, frame: Frame, fields: dict[str, str]) -> str:
        tid = frame.get("41")
        with self._lock:
            counted = [s for s in self._journal if s.terminal_id == tid and s.counts]
            amount = sum(s.amount for s in counted)
            totals = f"{amount:012d}{len(counted):03d}"
            fields["48"] = totals
            if frame.get("48") != totals:
                return RC_RECONCILE_ERROR
            for sale in counted:
                sale.settled = True
        return RC_APPROVED


async def _write(writer: asyncio.StreamWriter, data: bytes) -> bool:
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        return False
    return True


def response_mti(mti: str) -> str:
    """0800 -> 0810, 0200 -> 0210, ...: the response digit set."""
    if len(mti) == 4 and mti.isdigit():
        return mti[:2] + str(int(mti[2]) | 1) + mti[3]
    return "0810"


def classify(frame: Frame) -> str:
    """Which transaction a request is, from its MTI, processing code and field 60."""
    mti = frame.mti
    if mti == "0800":
        return NETWORK_CODES.get(frame.get("60")[-3:], "unknown")
    if mti == "0200" and frame.get("3")[:2] == "00":
        return "sale"
    if mti in ("0400", "0420"):
        return "reversal"
    if mti == "0500":
        return "settlement"
    return "unknown"
