"""What the docs promise a terminal vendor, checked: the published ROM key is the sim's
and verifies the shipped images; a command terminal's relative program path is found
from the rig file's folder."""

from __future__ import annotations

from pathlib import Path

from hil.config import parse_rig
from hil.firmware import load_image, public_key_pem, verify
from hil.suite import FIXTURES
from tests.conftest import REPO

FIRMWARE = FIXTURES / "firmware"


def test_the_published_rom_key_is_the_sims_and_the_signing_keys_public_half() -> None:
    published = (FIRMWARE / "rom-key.pub").read_bytes()
    assert published == (REPO / "hil" / "sim" / "rom_key.pub").read_bytes()
    assert published == public_key_pem((FIRMWARE / "vendor-test-signing-key.pem").read_bytes())
    assert verify(load_image(FIRMWARE / "pos-sim-healthy-1.4.2.fw.json"), published)
    assert not verify(load_image(FIRMWARE / "tampered-1.4.2.fw.json"), published)
    docs = (REPO / "docs" / "test-port-protocol.md").read_text()
    assert published.decode().strip() in docs, "the key is printed in the protocol doc"


def test_a_command_terminal_program_is_found_from_the_rig_files_folder(tmp_path: Path) -> None:
    rig = tmp_path / "rigs" / "vendor.toml"
    text = f"""
[rig]
name = "vendor"

[dut]
driver = "command"
command = ["./bin/terminal", "--config", "terminal.ini"]
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"
firmware = "{FIRMWARE / "pos-sim-healthy-1.4.2.fw.json"}"

[console]
driver = "pyserial"
"""
    dut = parse_rig(text, rig).dut
    assert dut.command == [str(tmp_path / "rigs" / "bin" / "terminal"), "--config", "terminal.ini"]  # type: ignore[attr-defined]
    bare = parse_rig(text.replace("./bin/terminal", "python3"), rig).dut
    assert bare.command[0] == "python3"  # type: ignore[attr-defined]


def test_the_key_download_vector_of_docs_host_md() -> None:
    from hil.host.downloads import load_key_set, wrap_keys

    field_62 = wrap_keys(load_key_set(FIXTURES / "host" / "keys-test.json"))
    documented = (
        "01 DCDDFF7E40C02D5D81994378048F6E20 759D4982 02 CB975CB65B2BDC9D3AFB1225B814C2E7 2449C5EB"
    )
    assert field_62 == bytes.fromhex(documented.replace(" ", ""))
    assert documented.split(" 02 ", maxsplit=1)[0] in (REPO / "docs" / "host.md").read_text()
