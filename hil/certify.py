"""``hil certify RUN`` and ``hil verify BUNDLE``: a signed record of one run that nobody
can edit afterwards without it showing.

A bundle is a folder with two files:

- ``certificate.json``: ``{"format", "payload", "signature"}``, written in one canonical
  form (keys sorted, two-space indent, UTF-8, a final newline). The payload names the
  terminal, firmware version and SHA-256, rig, pos-hil version, the suite's fingerprint,
  the run's times and every scenario's outcome and measurements, and the SHA-256 of the
  run's summary.json and junit.xml. The signature is ed25519 over the payload's compact
  canonical JSON, with the public key and its fingerprint beside it.
- ``certificate.html``: the same payload as a page a person reads, rendered from it.

``verify`` re-renders both files from the payload and compares bytes (an edited byte
anywhere fails, whitespace included), checks the signature, and optionally that the
key is the lab's (``--public-key``: without it, anyone could sign an edited payload with
a key of their own, so verify says whose key signed) and that the run's files still
hash as recorded (``--run``). The private key comes from ``--key PATH`` or the
environment (``HIL_CERT_KEY``: a path); it is read, used and never written anywhere.

A run that did not finish (interrupted, killed, still running), or in which a scenario
was not judged because of the rig, the configuration or pos-hil itself, cannot be
certified: its evidence is incomplete. Terminal failures can: a certificate says what
the build did, pass or fail.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from hil import __version__
from hil.errors import ConfigError, HilError
from hil.firmware import load_private_key, load_public_key
from hil.masking import mask_data
from hil.runrecord import RunRecord, ScenarioRecord
from hil.strictjson import StrictJsonError, loads_object

FORMAT = "pos-hil-certificate/1"
CERTIFICATE_JSON = "certificate.json"
CERTIFICATE_HTML = "certificate.html"
KEY_ENV = "HIL_CERT_KEY"
RUN_FILES = ("summary.json", "junit.xml")


class VerificationFailed(HilError):
    """The bundle is not what was signed, or not signed by the expected key."""


@dataclass(frozen=True)
class Verified:
    run_id: str
    verdict: str
    key_fingerprint: str
    firmware: str


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _document_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(public_raw: bytes) -> str:
    """SHA-256 of the raw 32-byte public key, first 16 bytes in hex: what a lab pins."""
    return hashlib.sha256(public_raw).hexdigest()[:32]


def private_key_pem(key: Path | None) -> bytes:
    """The signing key from ``--key`` or ``$HIL_CERT_KEY``; ConfigError naming which."""
    if key is None:
        named = os.environ.get(KEY_ENV, "")
        if not named:
            raise ConfigError(f"certify: no signing key (--key PATH or {KEY_ENV}=PATH)")
        key, where = Path(named), KEY_ENV
    else:
        where = "--key"
    try:
        return key.read_bytes()
    except OSError as e:
        raise ConfigError(f"{where}: {key}: {e.strerror or e}") from None


def certifiable(run: RunRecord) -> None:
    """ConfigError saying why ``run`` cannot be certified, if it cannot."""
    where = run.path
    if run.data.get("interrupted") is True or run.data.get("status") == "interrupted":
        raise ConfigError(f"{where}: the run was interrupted: it cannot be certified")
    if not run.complete:
        status = run.data.get("status", "unknown")
        raise ConfigError(
            f"{where}: the run did not finish (status {status}): it cannot be certified"
        )
    if not run.scenarios:
        raise ConfigError(f"{where}: the run judged no scenario: nothing to certify")
    unjudged = [s for s in run.scenarios.values() if not s.judged and s.outcome != "skipped"]
    if unjudged:
        first = unjudged[0]
        raise ConfigError(
            f"{where}: {len(unjudged)} scenario(s) not judged ({first.title}: "
            f"{first.blame or first.outcome}): rerun before certifying"
        )
    for key in ("firmware_version", "firmware_sha256", "terminal_model", "terminal_serial"):
        if not run.environment.get(key):
            raise ConfigError(
                f"{where}: environment.{key}: missing: the run does not say what it tested"
            )


def _scenario_payload(record: ScenarioRecord, raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": record.title,
        "nodeid": record.nodeid,
        "outcome": record.outcome,
        "repeats": record.repeat_count,
        "failed_repeats": record.failed_repeats,
        "requirements": sorted(str(r) for r in raw.get("requirements") or []),
        "message": record.message,
        "measurements": [
            {"name": m.name, "value": m.value, "unit": m.unit, "low": m.low, "high": m.high}
            for m in record.measurements
        ],
    }


def payload_for(run: RunRecord) -> dict[str, Any]:
    env = run.environment
    raw_by_id = {str(s.get("nodeid")): s for s in run.data.get("scenarios", [])}
    scenarios = [
        _scenario_payload(record, raw_by_id.get(nodeid, {}))
        for nodeid, record in sorted(run.scenarios.items())
    ]
    failed = sum(1 for s in run.scenarios.values() if s.terminal_failed)
    payload: dict[str, Any] = mask_data(
        {
            "run_id": run.run_id,
            "issued": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "verdict": "failed" if failed else "passed",
            "terminal": {
                "model": env.get("terminal_model", ""),
                "serial_number": env.get("terminal_serial", ""),
                "terminal_id": env.get("terminal_id", ""),
            },
            "firmware": {
                "version": env.get("firmware_version", ""),
                "sha256": env.get("firmware_sha256", ""),
                "image": env.get("firmware_image", ""),
            },
            "rig": {
                "name": env.get("rig", ""),
                "instruments": {
                    k.removeprefix("instrument."): v
                    for k, v in sorted(env.items())
                    if k.startswith("instrument.")
                },
            },
            "pos_hil_version": env.get("pos_hil_version", ""),
            "certified_with": __version__,
            "suite_sha256": env.get("suite_sha256", ""),
            "started": run.data.get("started", ""),
            "ended": run.data.get("updated", ""),
            "duration_s": run.data.get("duration_s"),
            "counts": run.data.get("counts", {}),
            "scenarios": scenarios,
            "run_files": {
                name: _sha256_file(run.folder / name)
                for name in RUN_FILES
                if (run.folder / name).is_file()
            },
        }
    )
    return payload


def certify(run: RunRecord, key_pem: bytes, out: Path) -> Path:
    """Write the bundle for ``run`` into ``out``; returns the certificate.json."""
    certifiable(run)
    private = load_private_key(key_pem)
    public_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    payload = payload_for(run)
    document = {
        "format": FORMAT,
        "payload": payload,
        "signature": {
            "algorithm": "ed25519",
            "public_key": public_raw.hex(),
            "key_fingerprint": fingerprint(public_raw),
            "value": private.sign(_canonical(payload)).hex(),
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / CERTIFICATE_JSON).write_bytes(_document_bytes(document))
    (out / CERTIFICATE_HTML).write_bytes(render_page(document))
    return out / CERTIFICATE_JSON


def verify_bundle(
    bundle: Path, *, public_key_pem: bytes | None = None, run_folder: Path | None = None
) -> Verified:
    """Check a bundle; VerificationFailed (one line) for the first thing that is wrong."""
    folder = bundle if bundle.is_dir() else bundle.parent
    path = folder / CERTIFICATE_JSON
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    try:
        document = loads_object(raw)
    except StrictJsonError as e:
        raise VerificationFailed(f"{path}: not a certificate: {e}") from None
    if document.get("format") != FORMAT:
        raise VerificationFailed(f"{path}: format is {document.get('format')!r}, not {FORMAT!r}")
    payload, signature = document.get("payload"), document.get("signature")
    if not isinstance(payload, dict) or not isinstance(signature, dict):
        raise VerificationFailed(f"{path}: payload or signature missing")
    if set(document) != {"format", "payload", "signature"}:
        raise VerificationFailed(f"{path}: top-level keys {sorted(document)}: the file was edited")
    if set(signature) != {"algorithm", "public_key", "key_fingerprint", "value"} or (
        signature.get("algorithm") != "ed25519"
    ):
        raise VerificationFailed(f"{path}: signature block is not ed25519's: the file was edited")
    if _document_bytes(document) != raw:
        raise VerificationFailed(f"{path}: not in its canonical form: the file was edited")
    try:
        public_raw = bytes.fromhex(str(signature.get("public_key", "")))
        value = bytes.fromhex(str(signature.get("value", "")))
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError as e:
        raise VerificationFailed(f"{path}: signature block unreadable: {e}") from None
    if signature.get("key_fingerprint") != fingerprint(public_raw):
        raise VerificationFailed(f"{path}: signature.key_fingerprint does not match its key")
    try:
        key.verify(value, _canonical(payload))
    except InvalidSignature:
        raise VerificationFailed(
            f"{path}: signature does not match the payload: the certificate was edited"
        ) from None
    if public_key_pem is not None:
        expected = load_public_key(public_key_pem).public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if expected != public_raw:
            raise VerificationFailed(
                f"{path}: signed by key {fingerprint(public_raw)}, not by the lab's key "
                f"{fingerprint(expected)}"
            )
    page = folder / CERTIFICATE_HTML
    if not page.is_file():
        raise VerificationFailed(f"{page}: missing")
    if page.read_bytes() != render_page(document):
        raise VerificationFailed(f"{page}: differs from the signed payload: the page was edited")
    if run_folder is not None:
        recorded = payload.get("run_files") or {}
        for name, digest in sorted(recorded.items()):
            current = run_folder / name
            if not current.is_file():
                raise VerificationFailed(f"{current}: missing (the certificate records it)")
            if _sha256_file(current) != digest:
                raise VerificationFailed(f"{current}: changed since the run was certified")
    firmware = payload.get("firmware") or {}
    return Verified(
        run_id=str(payload.get("run_id", "")),
        verdict=str(payload.get("verdict", "")),
        key_fingerprint=fingerprint(public_raw),
        firmware=f"{firmware.get('version', '')} sha256 {firmware.get('sha256', '')}",
    )


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}.passed{color:#1a7f37}.failed{color:#cf222e}"
    "code{font-size:90%}"
)


def render_page(document: dict[str, Any]) -> bytes:
    """The certificate as one self-contained page (no script, no request), from the
    document alone: verify renders it again and compares bytes."""
    p = document["payload"]
    sig = document["signature"]
    e = html.escape

    def row(name: str, value: Any) -> str:
        return f"<tr><th>{e(name)}</th><td>{e(str(value))}</td></tr>"

    facts = "".join(
        [
            row("run", p.get("run_id")),
            row("verdict", p.get("verdict")),
            row(
                "terminal",
                f"{p['terminal'].get('model')} SN {p['terminal'].get('serial_number')}"
                f" TID {p['terminal'].get('terminal_id')}",
            ),
            row("firmware", f"{p['firmware'].get('version')} ({p['firmware'].get('image')})"),
            row("firmware SHA-256", p["firmware"].get("sha256")),
            row("rig", p["rig"].get("name")),
            row("instruments", ", ".join(f"{k}={v}" for k, v in p["rig"]["instruments"].items())),
            row("pos-hil", p.get("pos_hil_version")),
            row("suite SHA-256", p.get("suite_sha256")),
            row("started", p.get("started")),
            row("ended", p.get("ended")),
            row("issued", p.get("issued")),
            row("signing key", sig.get("key_fingerprint")),
        ]
    )
    lines = []
    for s in p["scenarios"]:
        figures = "; ".join(
            f"{m['name']} {m['value']:.4g} {m['unit']}".rstrip() for m in s["measurements"]
        )
        repeats = f" ({s['failed_repeats']} of {s['repeats']} failed)" if s["repeats"] > 1 else ""
        lines.append(
            f'<tr><td>{e(s["title"])}</td><td class="{e(s["outcome"])}">{e(s["outcome"])}'
            f"{e(repeats)}</td><td>{e(', '.join(s['requirements']))}</td><td>{e(figures)}</td>"
            f"<td>{e(s['message'])}</td></tr>"
        )
    body = (
        f"<h1>pos-hil certificate: {e(str(p.get('verdict')))}</h1>"
        f"<table>{facts}</table><h2>Scenarios</h2><table><tr><th>scenario</th><th>outcome</th>"
        f"<th>requirements</th><th>measurements</th><th>message</th></tr>{''.join(lines)}</table>"
        f"<p>Check with <code>hil verify {e(CERTIFICATE_JSON)} --public-key LAB.pub</code>; "
        "this page is rendered from the signed payload and checked byte for byte.</p>"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>pos-hil certificate {e(str(p.get('run_id')))}</title>"
        f"<style>{_PAGE_STYLE}</style></head><body>{body}</body></html>\n"
    )
    return page.encode()
