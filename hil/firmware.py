"""Firmware images: format, signing and verification.

An image is a JSON file::

    {"format": "pos-hil-fw/1",
     "manifest": {"model": "POS-SIM-A8", "version": "1.4.2", "build": "...",
                  "build_flags": [...], "seeded_defects": [...]},
     "signature": "<hex ed25519 signature over canonical_manifest(manifest)>"}

The signature covers the manifest only, serialised canonically (sorted keys, compact
separators, UTF-8), so re-indenting the file does not break it but changing any value
does. The simulated terminal verifies it at boot with the vendor key in its ROM; the
rig and the firmware-update tests use the same functions.

Command line (used to build ``fixtures/firmware/``)::

    python -m hil.firmware keygen --out KEY.pem
    python -m hil.firmware pubkey --key KEY.pem --out KEY.pub
    python -m hil.firmware sign --key KEY.pem --manifest MANIFEST.json --out IMAGE.fw.json
    python -m hil.firmware edit IMAGE.fw.json --set FIELD=JSON --out TAMPERED.fw.json
    python -m hil.firmware unsign IMAGE.fw.json --out UNSIGNED.fw.json
    python -m hil.firmware verify --pub KEY.pub IMAGE.fw.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hil import strictjson
from hil.errors import ConfigError
from hil.strictjson import StrictJsonError

IMAGE_FORMAT = "pos-hil-fw/1"

# Dotted numeric version with an optional pre-release/build suffix ("1.4.2", "2.0.0-rc1").
VERSION_PATTERN = re.compile(r"^\d{1,4}\.\d{1,4}\.\d{1,4}(?:[-+][0-9A-Za-z.-]{1,32})?$")

_SIGNATURE_HEX_LEN = 128  # ed25519 signatures are 64 bytes


@dataclass(frozen=True)
class FirmwareManifest:
    """The signed part of an image. ``raw`` is exactly what the signature covers."""

    model: str
    version: str
    build: str
    build_flags: tuple[str, ...]
    seeded_defects: tuple[str, ...]
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class FirmwareImage:
    """A parsed image file. ``source`` names where it came from, for error messages."""

    manifest: FirmwareManifest
    signature: bytes
    source: str

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def model(self) -> str:
        return self.manifest.model


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The exact bytes a signature covers.

    ValueError if the manifest holds what strict JSON refuses (NaN, an unpaired
    surrogate): such a manifest has no canonical form to sign or verify.
    """
    text = json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def version_is_valid(version: str) -> bool:
    return VERSION_PATTERN.fullmatch(version) is not None


def load_image(path: str | Path) -> FirmwareImage:
    """Read and parse an image file. Raises ConfigError naming the file and the field."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read firmware image: {e.strerror or e}") from e
    return image_from_bytes(raw, source=str(p))


def image_named(path: Path, where: str) -> FirmwareImage:
    """The image at ``path``, named by ``where`` (``--firmware``, ``rigs/x.toml:
    dut.firmware``): a ConfigError that says where the image was given, whatever is
    wrong with it (a folder, missing, unreadable, malformed)."""
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder, not a firmware image file")
    if not path.exists():
        raise ConfigError(f"{where}: file not found: {path}")
    try:
        return load_image(path)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def image_from_bytes(raw: bytes, *, source: str = "<image>") -> FirmwareImage:
    """Parse image file bytes (read once, so the hash and the verified image agree).

    The file must be strict JSON (hil.strictjson): a manifest that names a key twice
    would verify for a reader keeping one value and act on the other for a reader
    keeping the first.
    """
    try:
        data = strictjson.loads_object(raw)
    except StrictJsonError as e:
        raise ConfigError(f"{source}: firmware image: {e}") from e
    return parse_image(data, source=source)


def parse_image(data: Any, *, source: str = "<image>") -> FirmwareImage:
    """Validate an already-decoded image. Raises ConfigError naming source and field."""

    def bad(field: str, why: str) -> ConfigError:
        return ConfigError(f"{source}: field '{field}': {why}")

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: firmware image: JSON is not an object")
    for key in data:
        if key not in ("format", "manifest", "signature"):
            raise bad(key, "unknown field")
    fmt = data.get("format")
    if fmt != IMAGE_FORMAT:
        raise bad("format", f"expected '{IMAGE_FORMAT}', got {fmt!r}")

    manifest = data.get("manifest")
    if not isinstance(manifest, dict):
        raise bad("manifest", "missing or not an object")
    for key in ("model", "version", "build"):
        value = manifest.get(key)
        if not isinstance(value, str) or not value:
            raise bad(f"manifest.{key}", "missing or not a non-empty string")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("build_flags", "seeded_defects"):
        value = manifest.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"manifest.{key}", "must be a list of strings")
        lists[key] = tuple(value)
    try:
        canonical_manifest(manifest)
    except ValueError as e:  # UnicodeEncodeError too: an unpaired surrogate
        raise bad("manifest", f"has no canonical JSON form: {e}") from e

    sig_hex = data.get("signature")
    if not isinstance(sig_hex, str) or len(sig_hex) != _SIGNATURE_HEX_LEN:
        raise bad("signature", f"must be {_SIGNATURE_HEX_LEN} hex digits")
    try:
        signature = bytes.fromhex(sig_hex)
    except ValueError as e:
        raise bad("signature", "not hexadecimal") from e

    return FirmwareImage(
        manifest=FirmwareManifest(
            model=manifest["model"],
            version=manifest["version"],
            build=manifest["build"],
            build_flags=lists["build_flags"],
            seeded_defects=lists["seeded_defects"],
            raw=dict(manifest),
        ),
        signature=signature,
        source=source,
    )


def load_public_key(public_key_pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as e:
        raise ConfigError(f"public key is not a PEM public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("public key is not an ed25519 key")
    return key


def load_private_key(private_key_pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"private key is not an unencrypted PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("private key is not an ed25519 key")
    return key


def verify(image: FirmwareImage, public_key_pem: bytes) -> bool:
    """True when the manifest's signature is valid for the given vendor key."""
    key = load_public_key(public_key_pem)
    try:
        signed = canonical_manifest(image.manifest.raw)
    except ValueError as e:  # only for an image built by hand: parse_image refuses these
        raise ConfigError(
            f"{image.source}: field 'manifest': has no canonical JSON form: {e}"
        ) from e
    try:
        key.verify(image.signature, signed)
    except InvalidSignature:
        return False
    return True


def sign_manifest(manifest: Mapping[str, Any], private_key_pem: bytes) -> dict[str, Any]:
    """Sign a manifest and return the full image dict (validated like a loaded one)."""
    key = load_private_key(private_key_pem)
    try:
        signed = canonical_manifest(manifest)
    except ValueError as e:
        raise ConfigError(f"manifest to sign has no canonical JSON form: {e}") from e
    image = {
        "format": IMAGE_FORMAT,
        "manifest": dict(manifest),
        "signature": key.sign(signed).hex(),
    }
    parse_image(image, source="<signed manifest>")
    return image


def dump_image(image: Mapping[str, Any]) -> str:
    """Human-readable image text; the signature does not depend on this layout."""
    return json.dumps(image, indent=2, ensure_ascii=False) + "\n"


def sign_image(manifest_path: Path, key_path: Path, out_path: Path) -> dict[str, Any]:
    """Sign the manifest JSON file with the PEM key file and write the image file."""
    try:
        manifest = strictjson.loads_object(manifest_path.read_bytes())
    except (OSError, StrictJsonError) as e:
        raise ConfigError(f"{manifest_path}: cannot read manifest: {e}") from e
    image = sign_manifest(manifest, key_path.read_bytes())
    out_path.write_text(dump_image(image), encoding="utf-8")
    return image


def image_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of the image file's bytes, as flashed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()


def generate_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(private_key_pem: bytes) -> bytes:
    return (
        load_private_key(private_key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _edit_field(image: dict[str, Any], assignment: str) -> None:
    """Apply ``manifest.field=JSON`` (or ``field=JSON``, relative to the manifest)."""
    path, sep, value_text = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set {assignment!r}: expected FIELD=JSON")
    try:
        value = strictjson.loads(value_text)
    except StrictJsonError:
        value = value_text  # bare words are taken as strings
    parts = path.split(".")
    if parts[0] != "manifest":
        parts.insert(0, "manifest")
    target: Any = image
    for part in parts[:-1]:
        if not isinstance(target, dict) or part not in target:
            raise ConfigError(f"--set {assignment!r}: no field '{part}'")
        target = target[part]
    if not isinstance(target, dict):
        raise ConfigError(f"--set {assignment!r}: '{'.'.join(parts[:-1])}' is not an object")
    target[parts[-1]] = value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.firmware", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p_keygen = sub.add_parser("keygen", help="write a new ed25519 private key (PEM)")
    p_keygen.add_argument("--out", type=Path, required=True)
    p_pub = sub.add_parser("pubkey", help="write the public key of a private key")
    p_pub.add_argument("--key", type=Path, required=True)
    p_pub.add_argument("--out", type=Path, required=True)
    p_sign = sub.add_parser("sign", help="sign a manifest JSON file into an image")
    p_sign.add_argument("--key", type=Path, required=True)
    p_sign.add_argument("--manifest", type=Path, required=True)
    p_sign.add_argument("--out", type=Path, required=True)
    p_edit = sub.add_parser(
        "edit", help="change manifest fields WITHOUT re-signing (makes tampered test images)"
    )
    p_edit.add_argument("image", type=Path)
    p_edit.add_argument("--set", dest="assignments", action="append", required=True)
    p_edit.add_argument("--out", type=Path, required=True)
    p_unsign = sub.add_parser(
        "unsign", help="write the image without its signature (makes unsigned test images)"
    )
    p_unsign.add_argument("image", type=Path)
    p_unsign.add_argument("--out", type=Path, required=True)
    p_verify = sub.add_parser("verify", help="check an image's format and signature")
    p_verify.add_argument("--pub", type=Path, required=True)
    p_verify.add_argument("image", type=Path)
    args = parser.parse_args(argv)

    try:
        if args.action == "keygen":
            if args.out.exists():
                raise ConfigError(f"{args.out}: exists; refusing to overwrite a key")
            args.out.write_bytes(generate_private_key_pem())
        elif args.action == "pubkey":
            args.out.write_bytes(public_key_pem(args.key.read_bytes()))
        elif args.action == "sign":
            sign_image(args.manifest, args.key, args.out)
        elif args.action == "edit":
            load_image(args.image)
            image = strictjson.loads_object(args.image.read_bytes())
            for assignment in args.assignments:
                _edit_field(image, assignment)
            args.out.write_text(dump_image(image), encoding="utf-8")
        elif args.action == "unsign":
            load_image(args.image)
            image = strictjson.loads_object(args.image.read_bytes())
            del image["signature"]
            args.out.write_text(dump_image(image), encoding="utf-8")
        else:
            image_obj = load_image(args.image)
            ok = verify(image_obj, args.pub.read_bytes())
            print(
                f"{args.image}: {image_obj.model} {image_obj.version} "
                f"sha256={image_sha256(args.image)} signature {'valid' if ok else 'INVALID'}"
            )
            return 0 if ok else 1
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
