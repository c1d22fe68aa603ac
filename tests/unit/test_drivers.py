"""The driver registry: drivers from plug-ins, build order from declared needs, and
every mistake a lab can make in this layer as one line naming the file, field or
plug-in (exit 2, never a terminal failure or a rig fault)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hil.config import parse_rig
from hil.drivers import DriverRegistry
from hil.errors import ConfigError
from hil.rig import Rig
from hil.suite import DEFAULT_RIG, FIXTURES

SIM = DEFAULT_RIG.read_text().replace("../fixtures", str(FIXTURES))

RELAY_PLUGIN = """
from pydantic import Field

from hil.drivers import Built, Driver, DriverConfig, register


class Switch:
    def __init__(self, name, channel):
        self.name = name
        self.channel = channel
        self.is_on = False
        self.closed = False

    def on(self):
        self.is_on = True

    def off(self):
        self.is_on = False

    def cut(self):
        self.is_on = False

    def put_back(self):
        self.on()

    def preflight(self):
        return f"relay channel {self.channel}"

    def close(self):
        self.closed = True


class RelayConfig(DriverConfig):
    port: str
    channel: int = Field(default=1, ge=1, le=8)


@register("power", "relay")
class RelayDriver(Driver):
    config_model = RelayConfig

    @classmethod
    def build(cls, config, context):
        return Built(Switch("power", config.channel))
"""


def _module(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def _with_plugins(text: str, *modules: str) -> str:
    listed = ", ".join(f'"{m}"' for m in modules)
    return text.replace('[rig]\nname = "sim"', f'[rig]\nname = "sim"\nplugins = [{listed}]', 1)


def _relay_rig(plugin: str) -> str:
    text = SIM.replace('[power]\ndriver = "sim"\noff_timeout_s = 5.0', "")
    return _with_plugins(text, plugin) + '\n[power]\ndriver = "relay"\nport = "/dev/ttyUSB1"\n'


def test_a_plugin_module_adds_a_power_driver(registry: DriverRegistry, tmp_path: Path) -> None:
    _module(tmp_path, "lab_relay_a", RELAY_PLUGIN)
    config = parse_rig(_relay_rig("lab_relay_a"), tmp_path / "rig.toml")
    assert config.instruments()["power"] == "relay"
    assert registry.get("power", "relay") is not None
    rig = Rig(config)
    try:
        rig.build(["power"])
        power = rig.instrument("power")
        assert type(power).__name__ == "Switch"
        assert power.preflight() == "relay channel 1"
    finally:
        rig.close()


def test_a_plugin_driver_is_listed_among_the_known_ones(
    registry: DriverRegistry, tmp_path: Path
) -> None:
    _module(tmp_path, "lab_relay_b", RELAY_PLUGIN)
    text = _relay_rig("lab_relay_b").replace('driver = "relay"', 'driver = "relais"')
    with pytest.raises(
        ConfigError,
        match=r"power\.driver: unknown driver 'relais' "
        r"\(known: 'devantech-relay', 'labgrid', 'manual', 'relay', 'sim', 'snmp-pdu'\)",
    ):
        parse_rig(text, tmp_path / "rig.toml")


def test_a_plugin_driver_checks_its_own_options(registry: DriverRegistry, tmp_path: Path) -> None:
    _module(tmp_path, "lab_relay_c", RELAY_PLUGIN)
    text = _relay_rig("lab_relay_c").replace(
        'port = "/dev/ttyUSB1"', 'port = "/dev/ttyUSB1"\nchannel = 9'
    )
    with pytest.raises(
        ConfigError, match=r"rig\.toml: power\.channel: Input should be less than or equal to 8$"
    ):
        parse_rig(text, tmp_path / "rig.toml")
    text = _relay_rig("lab_relay_c").replace('port = "/dev/ttyUSB1"', "")
    with pytest.raises(ConfigError, match=r"rig\.toml: power\.port: required field missing$"):
        parse_rig(text, tmp_path / "rig.toml")


def test_a_plugin_that_fails_to_import_is_named(registry: DriverRegistry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rig(_relay_rig("lab_not_installed"), tmp_path / "rig.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'rig.toml'}: rig.plugins: plug-in 'lab_not_installed': cannot load: "
        "ModuleNotFoundError: No module named 'lab_not_installed'"
    )
    _module(tmp_path, "lab_broken", "raise RuntimeError('relay board SDK missing')\n")
    with pytest.raises(
        ConfigError,
        match=r"plug-in 'lab_broken': cannot load: RuntimeError: relay board SDK missing$",
    ):
        parse_rig(_relay_rig("lab_broken"), tmp_path / "rig.toml")


def test_a_name_registered_twice_names_both(registry: DriverRegistry, tmp_path: Path) -> None:
    _module(tmp_path, "lab_relay_d", RELAY_PLUGIN)
    _module(tmp_path, "lab_relay_e", RELAY_PLUGIN)
    text = _relay_rig("lab_relay_d").replace('"lab_relay_d"]', '"lab_relay_d", "lab_relay_e"]')
    with pytest.raises(ConfigError) as caught:
        parse_rig(text, tmp_path / "rig.toml")
    message = str(caught.value)
    assert "plug-in 'lab_relay_e'" in message
    assert "driver power.relay registered twice: by " in message
    assert "plug-in 'lab_relay_d'" in message


def test_a_plugin_cannot_take_a_builtin_name(registry: DriverRegistry, tmp_path: Path) -> None:
    _module(tmp_path, "lab_sim_power", RELAY_PLUGIN.replace('"power", "relay"', '"power", "sim"'))
    with pytest.raises(
        ConfigError,
        match=r"plug-in 'lab_sim_power': driver power\.sim registered twice: "
        r"by hil\.instruments\.power",
    ):
        parse_rig(_with_plugins(SIM, "lab_sim_power"), tmp_path / "rig.toml")


def test_a_plugin_adds_a_section_and_its_needs_order_the_build(
    registry: DriverRegistry, tmp_path: Path
) -> None:
    _module(
        tmp_path,
        "lab_camera",
        """
        from hil.drivers import Built, Driver, DriverConfig, register
        from hil.instruments.power import Power


        class Camera:
            name = "camera"

            def __init__(self, power):
                self.power = power

            def put_back(self):
                pass

            def preflight(self):
                return "camera sees the screen"

            def close(self):
                pass


        class CameraConfig(DriverConfig):
            device: int = 0


        @register("camera", "usb")
        class UsbCamera(Driver):
            config_model = CameraConfig
            needs = ("power",)

            @classmethod
            def build(cls, config, context):
                return Built(Camera(context.instrument("power", Power)), {"camera_eye": "usb0"})
        """,
    )
    text = _with_plugins(SIM, "lab_camera") + '\n[camera]\ndriver = "usb"\ndevice = 2\n'
    config = parse_rig(text, tmp_path / "rig.toml")
    order = list(config.build_order)
    assert order.index("power") < order.index("camera")
    rig = Rig(config)
    try:
        rig.build(["dut", "power", "camera"])
        assert rig.instrument("camera").preflight() == "camera sees the screen"
        assert "camera_eye" in rig.channels
        assert "camera" in rig.capabilities
    finally:
        rig.close()
    without_power = text.replace('[power]\ndriver = "sim"\noff_timeout_s = 5.0', "")
    with pytest.raises(
        ConfigError, match=r"rig\.toml: camera\.driver: 'usb' needs a \[power\] section$"
    ):
        parse_rig(without_power, tmp_path / "rig.toml")


def test_sections_that_need_each_other_are_a_cycle(
    registry: DriverRegistry, tmp_path: Path
) -> None:
    _module(
        tmp_path,
        "lab_cycle",
        """
        from hil.drivers import Driver, DriverConfig, register


        @register("left", "x")
        class Left(Driver):
            needs = ("right",)


        @register("right", "x")
        class Right(Driver):
            needs = ("left",)
        """,
    )
    text = _with_plugins(SIM, "lab_cycle") + '\n[left]\ndriver = "x"\n[right]\ndriver = "x"\n'
    with pytest.raises(
        ConfigError, match=r"rig\.toml: sections need each other in a cycle: left -> right$"
    ):
        parse_rig(text, tmp_path / "rig.toml")


def test_a_driver_must_build_a_rig_instrument(registry: DriverRegistry, tmp_path: Path) -> None:
    _module(
        tmp_path,
        "lab_half",
        """
        from hil.drivers import Built, Driver, register


        @register("lamp", "half")
        class HalfDone(Driver):
            @classmethod
            def build(cls, config, context):
                return Built(object())
        """,
    )
    config = parse_rig(
        _with_plugins(SIM, "lab_half") + '\n[lamp]\ndriver = "half"\n', tmp_path / "rig.toml"
    )
    rig = Rig(config)
    try:
        with pytest.raises(
            ConfigError,
            match=r"lamp\.driver: 'half' built a object, which lacks name, put_back, "
            r"preflight or close$",
        ):
            rig.build(["lamp"])
    finally:
        rig.close()


def test_a_driver_class_must_subclass_driver(registry: DriverRegistry) -> None:
    with pytest.raises(
        ConfigError, match=r"driver power\.odd: .* is not a subclass of hil\.drivers\.Driver"
    ):
        registry.add("power", "odd", object)  # type: ignore[arg-type]


def test_entry_point_plugins_load_once_per_process(
    registry: DriverRegistry, tmp_path: Path
) -> None:
    _module(
        tmp_path, "lab_relay_ep", RELAY_PLUGIN.replace('"power", "relay"', '"power", "relay-ep"')
    )
    dist = tmp_path / "lab_relay_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-relay-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pos_hil.drivers]\nrelay = lab_relay_ep\n")
    registry._entry_points_loaded = False  # this process already looked; look again
    text = SIM.replace(
        '[power]\ndriver = "sim"\noff_timeout_s = 5.0', '[power]\ndriver = "relay-ep"\nport = "x"'
    )
    text = text.replace(
        'driver = "sim"\nmodel', 'driver = "physical"\nwiring = "config"\nmodel'
    ).replace("time_scale = 0.05\n", "")
    text = text.replace('url = "dut:"', 'url = "socket://127.0.0.1:9"')
    # the update medium is a folder on the rig's host: no physical terminal reads it
    text = text.replace('[updates]\ndriver = "folder"\n', "")
    config = parse_rig(text, tmp_path / "rig.toml")
    assert config.instruments()["power"] == "relay-ep"
    registration = registry.get("power", "relay-ep")
    assert registration is not None
    assert "entry point pos_hil.drivers" in registration.origin


def test_a_broken_entry_point_names_its_package(registry: DriverRegistry, tmp_path: Path) -> None:
    dist = tmp_path / "lab_gone-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-gone\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[pos_hil.drivers]\ngone = lab_gone_module\n")
    registry._entry_points_loaded = False
    with pytest.raises(
        ConfigError,
        match=r"^plug-in 'gone' \(entry point pos_hil\.drivers = lab_gone_module, "
        r"package lab-gone\): cannot load: ModuleNotFoundError",
    ):
        parse_rig(SIM, tmp_path / "rig.toml")
