"""The simulated terminal's communication module: ISO 8583 to the acquirer host.

Everything the terminal says to the host goes through here: the echo test (comm
self-check), sign-on (terminal_id self-check), parameter and key download (data_sync
self-check and ``sync.run``), sale with reversal (``payment.sale``).

It dials ``host.address:host.port`` from config, or the ``host=ADDRESS:PORT`` channel
the rig wired (through the rig's fault path), with the configured connect and
response timeouts (wall time: a network timeout is not an inherent delay, so
HIL_TIME_SCALE leaves it alone) and ``comm.retries`` further attempts after a link
failure, a scaled back-off between them. Every wait is cut short by a power-off.

Flash state (atomic files in the state directory, see docs/host.md):
``comm.json`` (trace number, batch), ``params.json`` (the parameter set in force),
``keys.json`` (working keys and check values), ``reversal.json`` (a sale that may
need reversing: written *before* the 0200 leaves, removed when the 0210 or the 0410
arrives, so a power cut at any instant leaves a reversal to send, never a lost one).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from hil.host.downloads import SIM_TEST_TMK, KeyCheckError, canonical_bytes, digest_of, unwrap_keys
from hil.host.iso8583 import (
    DEFAULT_HEADER,
    DEFAULT_TPDU,
    Frame,
    Iso8583Error,
    build_tlv,
    decode_body,
    encode,
)
from hil.masking import mask_pan
from hil.protocol.endpoint import CommandFailed
from hil.sim import defects as seeded
from hil.sim.channels import Channels
from hil.sim.payments import (
    ENTRY_CHIP,
    POS_ENTRY_MODES,
    PRESENT_DEFAULT_MS,
    SALE_LEAK_BYTES,
    CredentialSource,
    SaleCredential,
    present_timeout_ms,
    sale_entry_mode,
)
from hil.sim.state import (
    FlashLayout,
    LogStore,
    atomic_write_json,
    iso_now,
    read_json,
    remove_durably,
)

log = logging.getLogger("hil.sim.comm")

# Inherent delays (scaled by HIL_TIME_SCALE).
RETRY_BACKOFF_S = 0.5
REVERSAL_RETRY_S = 2.0
# How often a blocking wait looks at the power switch.
POLL_S = 0.05

RC_APPROVED = "00"
RC_TID_NOT_REGISTERED = "97"
#: Reversal answers that settle it: done, or the host never saw the sale.
REVERSAL_SETTLED = ("00", "12", "25")

# The synthetic test card the sim uses for host sales (Luhn-valid, test range).
TEST_CARD_PAN = "6212345678901232"
TEST_CARD_EXPIRY = "2912"
TEST_CARD_SERVICE = "220"


class CommFailure(Exception):
    """The link to the host failed. ``kind``: timeout, refused, reset, malformed,
    unreachable, aborted (power-off)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


#: comm self-check code per link failure kind.
COMM_CODES = {
    "timeout": "E_COMM_TIMEOUT",
    "refused": "E_COMM_REFUSED",
    "reset": "E_COMM_RESET",
    "malformed": "E_COMM_MALFORMED",
    "unreachable": "E_COMM_CONNECT",
    "aborted": "E_COMM_TIMEOUT",
}


@dataclass(frozen=True)
class LinkSettings:
    address: str
    port: int
    connect_timeout_s: float
    response_timeout_s: float
    retries: int

    @property
    def worst_case_s(self) -> float:
        """Upper bound of one exchange with all its retries (back-off excluded)."""
        return (self.retries + 1) * (self.connect_timeout_s + self.response_timeout_s)


def host_target(config: Mapping[str, Any], channels: Channels) -> tuple[str, int] | None:
    """Where the terminal dials: its configured host, else the address the rig wired."""
    address = str(config.get("host.address", ""))
    port = int(config.get("host.port", 0))
    if address and port:
        return address, port
    return channels.host_endpoint()


class HostLink:
    """One TCP connection to the host, framed with the 2-byte length prefix."""

    def __init__(self, settings: LinkSettings, halt: threading.Event) -> None:
        self.settings = settings
        self._halt = halt
        self._sock: socket.socket | None = None
        self.connect_ms = 0.0

    def __enter__(self) -> HostLink:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        s = self.settings
        started = time.monotonic()
        try:
            infos = socket.getaddrinfo(s.address, s.port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise CommFailure("unreachable", f"cannot resolve {s.address}: {e}") from None
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        deadline = started + s.connect_timeout_s
        try:
            rc = sock.connect_ex(addr)
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, errno.errorcode.get(rc, str(rc)))
            while rc != 0:
                self._check_halt()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommFailure(
                        "timeout",
                        f"connect not completed within {s.connect_timeout_s * 1000:.0f} ms",
                    )
                _, writable, _ = select.select([], [sock], [], min(POLL_S, remaining))
                if writable:
                    rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if rc != 0:
                        raise OSError(rc, errno.errorcode.get(rc, str(rc)))
                    break
        except ConnectionRefusedError:
            sock.close()
            raise CommFailure("refused", "connection refused") from None
        except CommFailure:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            if e.errno == errno.ECONNREFUSED:
                raise CommFailure("refused", "connection refused") from None
            raise CommFailure("unreachable", e.strerror or str(e)) from None
        self._sock = sock
        self.connect_ms = (time.monotonic() - started) * 1000

    def _check_halt(self) -> None:
        if self._halt.is_set():
            raise CommFailure("aborted", "power-off during a host exchange")

    def send(self, data: bytes) -> None:
        assert self._sock is not None
        view = memoryview(data)
        deadline = time.monotonic() + self.settings.response_timeout_s
        while view:
            self._check_halt()
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CommFailure("timeout", "host stopped reading") from None
                select.select([], [self._sock], [], POLL_S)
                continue
            except OSError as e:
                raise CommFailure(
                    "reset", f"connection lost while sending: {e.strerror or e}"
                ) from None
            view = view[sent:]

    def _recv_exactly(self, n: int, deadline: float, what: str) -> bytes:
        assert self._sock is not None
        out = bytearray()
        while len(out) < n:
            self._check_halt()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timeout_ms = self.settings.response_timeout_s * 1000
                raise CommFailure(
                    "timeout", f"no complete {what} within {timeout_ms:.0f} ms ({len(out)} bytes)"
                )
            readable, _, _ = select.select([self._sock], [], [], min(POLL_S, remaining))
            if not readable:
                continue
            try:
                chunk = self._sock.recv(n - len(out))
            except BlockingIOError:
                continue
            except OSError as e:
                raise CommFailure(
                    "reset", f"connection reset during {what}: {e.strerror or e}"
                ) from None
            if not chunk:
                raise CommFailure(
                    "reset", f"host closed the connection during {what} ({len(out)} of {n} bytes)"
                )
            out += chunk
        return bytes(out)

    def exchange(self, mti: str, fields: Mapping[str, str]) -> tuple[Frame, float]:
        """Send one request, wait for its answer; returns it and the round trip in ms."""
        data = encode(mti, fields, header=DEFAULT_TPDU + DEFAULT_HEADER)
        started = time.monotonic()
        self.send(data)
        deadline = started + self.settings.response_timeout_s
        head = self._recv_exactly(2, deadline, "response")
        (length,) = struct.unpack(">H", head)
        body = self._recv_exactly(length, deadline, "response")
        rtt_ms = (time.monotonic() - started) * 1000
        try:
            frame = decode_body(body)
        except Iso8583Error as e:
            raise CommFailure("malformed", str(e)) from None
        expected = mti[:2] + str(int(mti[2]) | 1) + mti[3]
        if frame.mti != expected:
            raise CommFailure("malformed", f"answer MTI {frame.mti}, expected {expected}")
        if frame.get("11") != fields.get("11", frame.get("11")):
            raise CommFailure(
                "malformed", f"answer trace {frame.get('11')} for request {fields.get('11')}"
            )
        return frame, rtt_ms

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EchoResult:
    rtt_ms: float
    connect_ms: float
    attempts: int


@dataclass(frozen=True)
class SignOnResult:
    response_code: str
    attempts: int


@dataclass(frozen=True)
class SyncOutcome:
    """What a data sync did. ``code`` is a data_sync self-check code."""

    code: str
    message: str
    details: dict[str, Any]


# --- the module -------------------------------------------------------------------------


class CommModule:
    """The terminal's host communication; thread-safe (one host exchange at a time)."""

    def __init__(
        self,
        *,
        layout: FlashLayout,
        logs: LogStore,
        channels: Channels,
        config: Callable[[], Mapping[str, Any]],
        serial_number: str,
        time_scale: float,
        halt: threading.Event,
        emit: Callable[[str, dict[str, Any]], None],
        show: Callable[[str, Sequence[str]], object],
    ) -> None:
        self.layout = layout
        self.logs = logs
        self.channels = channels
        self._config = config
        self.serial_number = serial_number
        self.time_scale = time_scale
        self._halt = halt
        self._emit = emit
        self._show = show
        self._link_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._reversal_wakeup = threading.Event()
        self._worker: threading.Thread | None = None
        #: where a sale with an entry mode gets its instrument (wired by the terminal)
        self.credential_source: CredentialSource | None = None
        #: seeded defect sale_leaks_memory: every approved sale keeps SALE_LEAK_BYTES
        self.leaks_per_sale = False
        self._leaked: list[bytes] = []
        self.last_sync: SyncOutcome | None = None
        #: seeded defects of the running image (hil.sim.defects) this module honours
        self.defects: frozenset[str] = frozenset()

    # -- flash files ---------------------------------------------------------------

    @property
    def _comm_file(self) -> Path:
        return self.layout.root / "comm.json"

    @property
    def params_file(self) -> Path:
        return self.layout.root / "params.json"

    @property
    def keys_file(self) -> Path:
        return self.layout.root / "keys.json"

    @property
    def reversal_file(self) -> Path:
        return self.layout.root / "reversal.json"

    def _read(self, path: Path) -> Any:
        try:
            return read_json(path)
        except (ValueError, OSError) as e:
            self.logs.append("error", "E_COMM_STATE", f"{path.name} unreadable: {e}")
            return None

    def _next_trace(self) -> tuple[str, str]:
        """Next system trace audit number (persisted before use) and the batch number."""
        with self._state_lock:
            state = self._read(self._comm_file) or {}
            stan = int(state.get("stan", 0)) % 999999 + 1
            batch = int(state.get("batch", 1))
            atomic_write_json(self._comm_file, {"stan": stan, "batch": batch})
        return f"{stan:06d}", f"{batch:06d}"

    # -- link ----------------------------------------------------------------------

    def settings(self, config: Mapping[str, Any] | None = None) -> LinkSettings | None:
        values = config if config is not None else self._config()
        target = host_target(values, self.channels)
        if target is None:
            return None
        return LinkSettings(
            address=target[0],
            port=target[1],
            connect_timeout_s=int(values.get("comm.connect_timeout_ms", 5000)) / 1000,
            response_timeout_s=int(values.get("comm.response_timeout_ms", 30000)) / 1000,
            retries=int(values.get("comm.retries", 3)),
        )

    def _backoff(self) -> None:
        if self._halt.wait(RETRY_BACKOFF_S * self.time_scale):
            raise CommFailure("aborted", "power-off during a host exchange")

    def _identity(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {"41": str(config.get("terminal_id", "")), "42": str(config.get("merchant_id", ""))}

    def _network_request(
        self, config: Mapping[str, Any], code: str, extra: Mapping[str, str] | None = None
    ) -> tuple[str, dict[str, str]]:
        stan, batch = self._next_trace()
        fields = {"11": stan, **self._identity(config), "60": f"00{batch}{code}"}
        fields.update(extra or {})
        return stan, fields

    def _with_retries(
        self, settings: LinkSettings, attempt: Callable[[HostLink], Any]
    ) -> tuple[Any, int]:
        """Run ``attempt`` on a fresh connection, up to 1 + retries times on link failure."""
        last: CommFailure | None = None
        for n in range(1, settings.retries + 2):
            if n > 1:
                self._backoff()
            try:
                with self._link_lock, HostLink(settings, self._halt) as link:
                    return attempt(link), n
            except CommFailure as e:
                if e.kind == "aborted":
                    raise
                last = e
        assert last is not None
        raise CommFailure(last.kind, f"{last} (after {settings.retries + 1} attempts)")

    # -- echo test (comm) ------------------------------------------------------------

    def echo(self, config: Mapping[str, Any], settings: LinkSettings) -> EchoResult:
        def attempt(link: HostLink) -> EchoResult:
            _, fields = self._network_request(config, "301")
            answer, rtt = link.exchange("0800", fields)
            if answer.get("39") != RC_APPROVED:
                raise CommFailure(
                    "malformed", f"echo answered with response code {answer.get('39')}"
                )
            return EchoResult(round(rtt, 1), round(link.connect_ms, 1), 0)

        if seeded.ECHO_RETRIES_ONE_EXTRA in self.defects:
            settings = replace(settings, retries=settings.retries + 1)  # loop bound off by one
        result, attempts = self._with_retries(settings, attempt)
        assert isinstance(result, EchoResult)
        return EchoResult(result.rtt_ms, result.connect_ms, attempts)

    # -- sign-on (terminal_id) --------------------------------------------------------

    def sign_on(self, config: Mapping[str, Any], settings: LinkSettings) -> SignOnResult:
        def attempt(link: HostLink) -> str:
            _, fields = self._network_request(config, "001", {"63": self.serial_number})
            answer, _ = link.exchange("0800", fields)
            return answer.get("39")

        code, attempts = self._with_retries(settings, attempt)
        return SignOnResult(str(code), attempts)

    # -- data sync ----------------------------------------------------------------------

    def parameter_state(self) -> dict[str, Any]:
        """The parameter set in force and its digest, recomputed from flash."""
        stored = self._read(self.params_file)
        if not isinstance(stored, dict) or "parameters" not in stored:
            return {"version": None, "digest": None, "synced_at": None}
        data = canonical_bytes(
            {"version": stored.get("version"), "parameters": stored.get("parameters")}
        )
        return {
            "version": stored.get("version"),
            "digest": digest_of(data),
            "synced_at": stored.get("synced_at"),
        }

    def key_state(self) -> dict[str, Any]:
        stored = self._read(self.keys_file)
        if not isinstance(stored, dict):
            return {}
        kcv = stored.get("kcv", {})
        return dict(kcv) if isinstance(kcv, dict) else {}

    def sync(self, config: Mapping[str, Any], settings: LinkSettings) -> SyncOutcome:
        """Parameter download then key download; the old parameters stay unless the new
        ones arrived whole and their digest equals the host's."""
        old = self.parameter_state()
        details: dict[str, Any] = {
            "address": settings.address,
            "port": settings.port,
            "old_version": old["version"],
            "old_digest": old["digest"],
        }
        received: list[bytes] = []
        total = 0

        def download(link: HostLink) -> tuple[bytes, str, str]:
            nonlocal total
            received.clear()
            index = 0
            while True:
                _, fields = self._network_request(config, "360", {"62": f"{index:04X}"})
                answer, _ = link.exchange("0800", fields)
                if answer.get("39") != RC_APPROVED:
                    raise _Refused(answer.get("39"), "parameter download")
                block = bytes.fromhex(answer.get("62"))
                if len(block) < 4 or int.from_bytes(block[:2], "big") != index:
                    raise CommFailure("malformed", f"parameter block {index} malformed")
                total = int.from_bytes(block[2:4], "big")
                received.append(block[4:])
                index += 1
                if index >= total:
                    break
            _, fields = self._network_request(config, "361")
            answer, _ = link.exchange("0800", fields)
            if answer.get("39") != RC_APPROVED:
                raise _Refused(answer.get("39"), "parameter download end")
            end = bytes.fromhex(answer.get("62"))
            if len(end) < 32:
                raise CommFailure("malformed", "download end carries no digest")
            return b"".join(received), end[:32].hex(), end[32:].decode("utf-8", "replace")

        try:
            (data, host_digest, host_version), _ = self._with_retries(settings, download)
        except _Refused as e:
            details["response_code"] = e.response_code
            return SyncOutcome(
                "E_SYNC_REFUSED",
                f"host refused the {e.what} with response code {e.response_code}",
                details,
            )
        except CommFailure as e:
            if e.kind == "aborted":
                raise
            details.update(blocks=len(received), total_blocks=total, reason=str(e))
            kept = old["version"] or "none"
            if seeded.SYNC_KEEPS_PARTIAL_PARAMETERS in self.defects and received:
                # The live parameter file was written block by block: half of it is new.
                partial = b"".join(received).decode("utf-8", "replace")
                atomic_write_json(
                    self.params_file,
                    {"version": old["version"], "parameters": partial, "synced_at": iso_now()},
                )
            return SyncOutcome(
                "E_SYNC_INTERRUPTED",
                f"parameter download interrupted after {len(received)} of {total or '?'} "
                f"blocks ({e}); parameters {kept} kept",
                details,
            )
        mine = digest_of(data)
        details.update(
            blocks=len(received), total_blocks=total, digest=mine, host_digest=host_digest
        )
        parsed: Any = None
        if mine == host_digest:
            with contextlib.suppress(ValueError):
                parsed = json.loads(data.decode("utf-8"))
        if (
            mine != host_digest
            or not isinstance(parsed, dict)
            or parsed.get("version") != host_version
        ):
            kept = old["version"] or "none"
            return SyncOutcome(
                "E_SYNC_DIGEST",
                f"parameter digest {mine[:12]} differs from the host's {host_digest[:12]}; "
                f"parameters {kept} kept",
                details,
            )
        atomic_write_json(
            self.params_file,
            {
                "version": parsed["version"],
                "parameters": parsed.get("parameters"),
                "digest": mine,
                "synced_at": iso_now(),
            },
        )
        details["version"] = parsed["version"]
        try:
            kcv = self._download_keys(config, settings)
        except _Refused as e:
            return SyncOutcome(
                "E_SYNC_KEYS", f"host refused the key download ({e.response_code})", details
            )
        except (CommFailure, KeyCheckError) as e:
            if isinstance(e, CommFailure) and e.kind == "aborted":
                raise
            return SyncOutcome("E_SYNC_KEYS", f"key download failed: {e}", details)
        details["keys"] = kcv
        return SyncOutcome(
            "OK",
            f"parameters {parsed['version']} and {len(kcv)} keys downloaded, "
            f"digest {mine[:12]} equals the host's",
            details,
        )

    def _download_keys(self, config: Mapping[str, Any], settings: LinkSettings) -> dict[str, str]:
        def attempt(link: HostLink) -> str:
            _, fields = self._network_request(config, "350")
            answer, _ = link.exchange("0800", fields)
            if answer.get("39") != RC_APPROVED:
                raise _Refused(answer.get("39"), "key download")
            return answer.get("62")

        block, _ = self._with_retries(settings, attempt)
        keys = unwrap_keys(bytes.fromhex(str(block)), SIM_TEST_TMK)
        kcv = {name: key_check(key) for name, key in keys.items()}
        atomic_write_json(
            self.keys_file,
            {"keys": {n: k.hex() for n, k in keys.items()}, "kcv": kcv, "loaded_at": iso_now()},
        )
        return kcv

    def run_sync(self) -> SyncOutcome:
        config = self._config()
        settings = self.settings(config)
        if settings is None:
            outcome = SyncOutcome("E_SYNC_NO_HOST", "no host configured", {})
        else:
            outcome = self.sync(config, settings)
        self.last_sync = outcome
        level = "info" if outcome.code == "OK" else "error"
        self.logs.append(level, "I_SYNC" if outcome.code == "OK" else outcome.code, outcome.message)
        self._emit("sync.finished", {"code": outcome.code, "message": outcome.message})
        return outcome

    # -- sale and reversal ------------------------------------------------------------------

    def reversal_status(self) -> dict[str, Any]:
        record = self._read(self.reversal_file)
        if not isinstance(record, dict):
            return {"pending": False}
        return {
            "pending": True,
            "stan": record.get("stan"),
            "amount": record.get("amount"),
            "state": record.get("state"),
            "attempts": record.get("attempts", 0),
            "last_error": record.get("last_error", ""),
        }

    def sale(
        self, amount: int, entry_mode: str | None = None, timeout_ms: int = PRESENT_DEFAULT_MS
    ) -> dict[str, Any]:
        """A sale; ``entry_mode`` None is the built-in test card, else the instrument comes
        from ``credential_source`` (a card read or a scan) before anything is sent."""
        config = self._config()
        settings = self.settings(config)
        if settings is None:
            raise CommandFailed("E_COMM_NO_HOST", "no host configured")
        if not bool(config.get("permissions.sale", True)):
            raise CommandFailed("E_PAY_NOT_PERMITTED", "sales are not permitted (permissions.sale)")
        credential: SaleCredential | None = None
        if entry_mode is not None:
            if self.credential_source is None:
                raise CommandFailed("E_BAD_ARGS", f"this terminal takes no {entry_mode} sales")
            credential = self.credential_source(entry_mode, amount, timeout_ms)
        with self._link_lock:
            if self.reversal_file.exists() and self._send_reversal(settings) != "acknowledged":
                raise CommandFailed(
                    "E_REVERSAL_PENDING",
                    "a reversal is still pending; no new sale until the host acknowledges it",
                )
            return self._sale_locked(config, settings, amount, credential)

    def _sale_locked(
        self,
        config: Mapping[str, Any],
        settings: LinkSettings,
        amount: int,
        credential: SaleCredential | None = None,
    ) -> dict[str, Any]:
        stan, batch = self._next_trace()
        now = datetime.now()
        fields = sale_fields(config, stan, batch, amount, now, credential)
        result: dict[str, Any] = {
            "stan": stan,
            "amount": amount,
            "card": mask_pan(TEST_CARD_PAN) if credential is None else credential.masked_card,
            "entry_mode": ENTRY_CHIP if credential is None else credential.entry_mode,
            "reversal": {"state": "none", "attempts": 0},
        }
        if credential is not None and credential.wallet is not None:
            result["wallet"] = credential.wallet
        self._show("payment", ["交易处理中", "Processing", f"{amount / 100:.2f}"])
        if seeded.SALE_GIVES_UP_EARLY in self.defects:
            # The answer timer is armed with half the configured response timeout.
            settings = replace(settings, response_timeout_s=settings.response_timeout_s / 2)
        try:
            link = HostLink(settings, self._halt)
            link.connect()
        except CommFailure as e:
            # Nothing left the terminal: no reversal needed.
            return self._sale_failed(result, e)
        try:
            # Armed before the request leaves: a power cut from here on leaves a reversal.
            atomic_write_json(
                self.reversal_file,
                {
                    "stan": stan,
                    "batch": batch,
                    "amount": amount,
                    "date": fields["13"],
                    "state": "armed",
                    "attempts": 0,
                    "armed_at": iso_now(),
                },
            )
            try:
                answer, rtt = link.exchange("0200", fields)
            except CommFailure as e:
                if e.kind == "aborted":
                    raise
                self._mark_reversal_pending(str(e))
                self.logs.append("error", COMM_CODES[e.kind], f"sale {stan}: {e}; reversal due")
                failed = self._sale_failed(result, e)
                failed["reversal"] = {"state": self._send_reversal(settings), **self._attempts()}
                self._wake_reversal_worker()
                return failed
        finally:
            link.close()
        remove_durably(self.reversal_file)
        code = answer.get("39")
        approved = code == RC_APPROVED
        result.update(
            outcome="approved" if approved else "declined",
            response_code=code,
            rrn=answer.get("37"),
            auth_code=answer.get("38"),
            rtt_ms=round(rtt, 1),
        )
        self.logs.append(
            "info", "I_SALE", f"sale {stan} amount {amount} {result['outcome']} ({code})"
        )
        if approved and self.leaks_per_sale:
            self._leaked.append(b"\x5a" * SALE_LEAK_BYTES)  # written, so resident
        lines = ["交易成功", "Approved"] if approved else ["交易失败", f"Declined {code}"]
        self._show("payment_result", lines)
        self._emit("payment.result", _event_view(result))
        return result

    def _attempts(self) -> dict[str, Any]:
        status = self.reversal_status()
        return {"attempts": status.get("attempts", 0)} if status["pending"] else {}

    def _sale_failed(self, result: dict[str, Any], e: CommFailure) -> dict[str, Any]:
        result.update(outcome="failed", code=COMM_CODES[e.kind], reason=str(e))
        self._show("payment_result", ["交易失败", "Communication error", COMM_CODES[e.kind]])
        self._emit("payment.result", _event_view(result))
        return result

    def _mark_reversal_pending(self, reason: str) -> None:
        record = self._read(self.reversal_file)
        if isinstance(record, dict):
            record.update(state="pending", reason=reason)
            atomic_write_json(self.reversal_file, record)

    def _send_reversal(self, settings: LinkSettings) -> str:
        """One attempt at the pending reversal: 'acknowledged', 'pending' or 'none'."""
        with self._link_lock:
            record = self._read(self.reversal_file)
            if not isinstance(record, dict):
                return "none"
            config = self._config()
            record["attempts"] = int(record.get("attempts", 0)) + 1
            record["state"] = "pending"
            atomic_write_json(self.reversal_file, record)
            fields = {
                "3": "000000",
                "4": f"{int(record.get('amount', 0)):012d}",
                "11": str(record.get("stan")),
                "25": "00",
                "39": "98",  # reason: no answer from the host
                **self._identity(config),
                "49": "156",
                "60": f"22{record.get('batch', '000001')}000",
                "61": f"{record.get('batch', '000001')}{record.get('stan')}{record.get('date')}",
            }
            try:
                with HostLink(settings, self._halt) as link:
                    answer, _ = link.exchange("0400", fields)
            except CommFailure as e:
                if e.kind == "aborted":
                    return "pending"
                record["last_error"] = str(e)
                atomic_write_json(self.reversal_file, record)
                self.logs.append(
                    "warn", "E_REVERSAL_PENDING", f"reversal of {record.get('stan')} failed: {e}"
                )
                return "pending"
            code = answer.get("39")
            if code not in REVERSAL_SETTLED:
                record["last_error"] = f"host answered {code}"
                atomic_write_json(self.reversal_file, record)
                return "pending"
            remove_durably(self.reversal_file)
            if seeded.LATE_DUPLICATE_REVERSAL in self.defects:
                self._resend_reversal_later(settings, fields)
        self.logs.append(
            "info",
            "I_REVERSAL_ACK",
            f"reversal of {record.get('stan')} acknowledged ({code}) after "
            f"{record['attempts']} attempt(s)",
        )
        self._emit(
            "reversal.acknowledged",
            {"stan": record.get("stan"), "attempts": record["attempts"], "response_code": code},
        )
        return "acknowledged"

    def _resend_reversal_later(self, settings: LinkSettings, fields: dict[str, str]) -> None:
        """Seeded defect: the retry timer is not cancelled by the acknowledgement, so it
        sends the same reversal once more at the next retry interval."""

        def resend() -> None:
            with contextlib.suppress(CommFailure), HostLink(settings, self._halt) as link:
                link.exchange("0400", fields)

        timer = threading.Timer(REVERSAL_RETRY_S * self.time_scale, resend)
        timer.daemon = True
        timer.start()

    # -- the reversal worker: retries until the host acknowledges --------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(
            target=self._reversal_worker, name="sim-reversal", daemon=True
        )
        self._worker.start()
        if self.reversal_file.exists():
            self._wake_reversal_worker()

    def _wake_reversal_worker(self) -> None:
        self._reversal_wakeup.set()

    def _reversal_worker(self) -> None:
        while not self._halt.is_set():
            # With nothing to retry there is nothing to look for until a sale leaves a
            # reversal (it wakes us) or the power goes (so does that): an idle terminal
            # does not wake ten times a second at the sim's time scale.
            retry_s = REVERSAL_RETRY_S * self.time_scale if self.reversal_file.exists() else None
            woken = self._reversal_wakeup.wait(retry_s)
            self._reversal_wakeup.clear()
            if self._halt.is_set():
                return
            if not woken and not self.reversal_file.exists():
                continue
            if not self.reversal_file.exists():
                continue
            settings = self.settings()
            if settings is None:
                continue
            try:
                self._send_reversal(settings)
            except Exception:  # the worker must outlive any one failure
                log.exception("reversal worker")

    def stop(self, timeout: float) -> None:
        if self._worker is not None:
            self._reversal_wakeup.set()
            self._worker.join(timeout)


class _Refused(Exception):
    def __init__(self, response_code: str, what: str) -> None:
        super().__init__(f"{what} refused ({response_code})")
        self.response_code = response_code
        self.what = what


def key_check(key: bytes) -> str:
    from hil.host.downloads import check_value

    return check_value(key).hex().upper()


def _event_view(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "reason"}


def sale_fields(
    config: Mapping[str, Any],
    stan: str,
    batch: str,
    amount: int,
    now: datetime,
    credential: SaleCredential | None = None,
) -> dict[str, str]:
    """A sale (0200) as a CUP-style terminal sends it: with the instrument the sale took
    (``credential``), or else the sim's built-in test card."""
    if credential is not None:
        return instrument_sale_fields(config, stan, batch, amount, now, credential)
    pan = TEST_CARD_PAN
    track2 = f"{pan}D{TEST_CARD_EXPIRY}{TEST_CARD_SERVICE}0000000000"
    icc = build_tlv(
        [
            ("9F26", bytes.fromhex("8A1C2E3F4B5D6E7F")),  # application cryptogram
            ("9F27", b"\x80"),
            ("9F10", bytes.fromhex("07010103A00000010A01000000000000")),
            ("9F37", bytes.fromhex("1A2B3C4D")),
            ("9F36", b"\x00\x2a"),
            ("95", bytes(5)),
            ("9A", bytes.fromhex(now.strftime("%y%m%d"))),
            ("9C", b"\x00"),
            ("9F02", bytes.fromhex(f"{amount:012d}")),
            ("5F2A", b"\x01\x56"),
            ("82", b"\x7c\x00"),
            ("9F1A", b"\x01\x56"),
            ("9F33", bytes.fromhex("E0F9C8")),
            ("84", bytes.fromhex("A000000333010101")),
            ("5A", bytes.fromhex(pan)),
            ("57", bytes.fromhex(track2.replace("D", "D") + ("F" if len(track2) % 2 else ""))),
            ("5F34", b"\x01"),
        ]
    )
    return {
        "2": pan,
        "3": "000000",
        "4": f"{amount:012d}",
        "11": stan,
        "12": now.strftime("%H%M%S"),
        "13": now.strftime("%m%d"),
        "14": TEST_CARD_EXPIRY,
        "22": "051",
        "23": "001",
        "25": "00",
        "35": track2,
        "41": str(config.get("terminal_id", "")),
        "42": str(config.get("merchant_id", "")),
        "49": "156",
        "55": icc.hex().upper(),
        "60": f"22{batch}000",
    }


def instrument_sale_fields(
    config: Mapping[str, Any],
    stan: str,
    batch: str,
    amount: int,
    now: datetime,
    credential: SaleCredential,
) -> dict[str, str]:
    """A 0200 with a card read (chip, contactless: PAN, expiry, track 2 equivalent,
    field 55 from the card's ARQC) or a scanned wallet code (QR: field 48, no card data)."""
    fields = {
        "3": "000000",
        "4": f"{amount:012d}",
        "11": stan,
        "12": now.strftime("%H%M%S"),
        "13": now.strftime("%m%d"),
        "22": POS_ENTRY_MODES[credential.entry_mode],
        "25": "00",
        "41": str(config.get("terminal_id", "")),
        "42": str(config.get("merchant_id", "")),
        "49": "156",
        "60": f"22{batch}000",
    }
    card = credential.card
    if card is not None:
        fields.update(
            {
                "2": card.pan,
                "14": card.expiry,
                "23": card.pan_sequence,
                "35": f"{card.pan}D{card.expiry}{card.service_code}0000000000",
                "55": build_tlv(list(card.icc)).hex().upper(),
            }
        )
    if credential.wallet_code is not None:
        fields["48"] = credential.wallet_code
    return fields


# --- test-port commands (registered by hil.sim.terminal) -------------------------------


def _no_unknown_args(args: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "none"
        raise CommandFailed(
            "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: {expected}"
        )


class CommCommands:
    """``comm.test``, ``sync.run``, ``sync.status``, ``payment.sale``, ``reversal.status``."""

    MAX_AMOUNT = 999_999_999_999

    def __init__(self, comm: CommModule) -> None:
        self.comm = comm

    def _settings(self) -> tuple[Mapping[str, Any], LinkSettings]:
        config = self.comm._config()
        settings = self.comm.settings(config)
        if settings is None:
            raise CommandFailed("E_COMM_NO_HOST", "no host configured (no host channel, no host.*)")
        return config, settings

    def comm_test(self, args: dict[str, Any]) -> dict[str, Any]:
        _no_unknown_args(args, ())
        config, settings = self._settings()
        result: dict[str, Any] = {"address": settings.address, "port": settings.port}
        try:
            echo = self.comm.echo(config, settings)
        except CommFailure as e:
            return result | {"code": COMM_CODES[e.kind], "message": str(e)}
        return result | {
            "code": "OK",
            "message": "echo answered",
            "rtt_ms": echo.rtt_ms,
            "connect_ms": echo.connect_ms,
            "attempts": echo.attempts,
        }

    def sync_run(self, args: dict[str, Any]) -> dict[str, Any]:
        _no_unknown_args(args, ())
        self._settings()
        outcome = self.comm.run_sync()
        return {"code": outcome.code, "message": outcome.message, "details": outcome.details}

    def sync_status(self, args: dict[str, Any]) -> dict[str, Any]:
        _no_unknown_args(args, ())
        last = self.comm.last_sync
        return {
            "parameters": self.comm.parameter_state(),
            "keys": self.comm.key_state(),
            "last_sync": None if last is None else {"code": last.code, "message": last.message},
        }

    def payment_sale(self, args: dict[str, Any]) -> dict[str, Any]:
        _no_unknown_args(args, ("amount", "entry_mode", "timeout_ms"))
        amount = args.get("amount")
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int)
            or not 1 <= amount <= self.MAX_AMOUNT
            or (
                seeded.AMOUNT_LIMIT_REFUSES_MAXIMUM in self.comm.defects
                and amount == self.MAX_AMOUNT
            )
        ):
            raise CommandFailed(
                "E_BAD_ARGS", f"amount must be an integer from 1 to {self.MAX_AMOUNT} (minor units)"
            )
        entry_mode = sale_entry_mode(args)
        return self.comm.sale(amount, entry_mode, present_timeout_ms(args))

    def reversal_status(self, args: dict[str, Any]) -> dict[str, Any]:
        _no_unknown_args(args, ())
        return self.comm.reversal_status()
