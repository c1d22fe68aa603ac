"""Degradation calibration: each axis measured back from the output image.

Geometry is measured with zxing-cpp (an independent decoder: the simulated terminal
uses OpenCV), so the calibration is not judged only by the library that made it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import zxingcpp

from hil.contract.qr import IN_SPEC, within_spec
from hil.qr.degrade import (
    AXES,
    VIEW_DISTANCE_FRAMES,
    Degradation,
    apply,
    compose,
)
from hil.qr.fixtures import merchant_payload
from hil.qr.render import CodeLayout, Image, RenderOptions, render, to_png

PAYLOAD = merchant_payload("dynamic_cny")


@pytest.fixture(scope="module")
def clean() -> tuple[Image, CodeLayout]:
    return render(PAYLOAD)


def module_centres(layout: CodeLayout, image: Image) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels at the centre of every light and every dark module."""
    px = layout.module_px
    rows = layout.y + np.arange(layout.modules) * px + px // 2
    cols = layout.x + np.arange(layout.modules) * px + px // 2
    samples = image[np.ix_(rows, cols)].astype(float)
    return samples[~layout.matrix], samples[layout.matrix]


def read_zxing(image: Image) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(image)
    assert found, "zxing-cpp read no code"
    return found[0]


def _point(p: object) -> np.ndarray:
    return np.array([p.x, p.y], dtype=float)  # type: ignore[attr-defined]


def test_render_geometry_and_independent_read(clean: tuple[Image, CodeLayout]) -> None:
    frame, layout = clean
    assert frame.shape == (480, 640)
    assert layout.side_px == layout.modules * 6
    light, dark = module_centres(layout, frame)
    assert set(light) == {255.0} and set(dark) == {0.0}
    code = read_zxing(frame)
    assert code.text == PAYLOAD
    # zxing's corners are the symbol's corners we placed, to a pixel
    tl = _point(code.position.top_left)
    assert np.allclose(tl, [layout.x, layout.y], atol=1.5)


@pytest.mark.parametrize("ecc", ["L", "M", "Q", "H"])
def test_render_options(ecc: str) -> None:
    opts = RenderOptions(module_px=4, ecc=ecc, quiet_zone=2)  # type: ignore[arg-type]
    frame, layout = render("HELLO 123", opts)
    assert layout.module_px == 4
    assert read_zxing(frame).text == "HELLO 123"
    assert str(read_zxing(frame).ec_level) == ecc


def test_render_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="needs"):
        render("x" * 300, RenderOptions(module_px=10))
    with pytest.raises(ValueError, match="empty"):
        render("")
    with pytest.raises(ValueError, match="module_px"):
        RenderOptions(module_px=0)


@pytest.mark.parametrize(
    ("contrast", "luminance"), [(1.0, 1.0), (0.5, 1.0), (0.2, 0.8), (0.05, 1.0), (0.3, 0.2)]
)
def test_contrast_and_luminance_measure_as_requested(
    clean: tuple[Image, CodeLayout], contrast: float, luminance: float
) -> None:
    frame, layout = clean
    out = apply(frame, layout, Degradation(contrast=contrast, luminance=luminance)).image
    light, dark = module_centres(layout, out)
    measured = (light.mean() - dark.mean()) / (light.mean() + dark.mean())
    # 8-bit output: within what one grey level of rounding can move the ratio
    one_level = 1 / (light.mean() + dark.mean())
    assert measured == pytest.approx(contrast, abs=one_level + 0.001)
    assert light.mean() / 255 == pytest.approx(luminance, abs=0.003)


def _rise_10_90(profile: np.ndarray) -> float:
    """Distance in pixels over which a rising edge goes from 10% to 90% (interpolated)."""
    lo, hi = profile.min(), profile.max()
    norm = (profile - lo) / (hi - lo)
    xs = np.arange(len(norm), dtype=float)
    return float(np.interp(0.9, norm, xs) - np.interp(0.1, norm, xs))


@pytest.mark.parametrize("sigma", [1.5, 3.0, 5.0])
def test_blur_sigma_measures_as_requested(sigma: float) -> None:
    frame = np.zeros((120, 200), dtype=np.uint8)
    frame[:, 100:] = 255
    out = apply(frame, None, Degradation(blur_sigma=sigma)).image
    profile = out[60, 60:140].astype(float)
    # a Gaussian-blurred step rises 10-90% over 2 * 1.2816 sigma
    assert _rise_10_90(profile) / 2.5631 == pytest.approx(sigma, rel=0.06)


@pytest.mark.parametrize("sigma", [5.0, 20.0, 30.0])
def test_noise_sigma_measures_as_requested(sigma: float) -> None:
    frame = np.full((300, 300), 128, dtype=np.uint8)
    out = apply(frame, None, Degradation(noise_sigma=sigma, seed=7)).image.astype(float)
    assert (out - 128).std() == pytest.approx(sigma, rel=0.03)
    assert abs((out - 128).mean()) < 0.5


@pytest.mark.parametrize("degrees", [15.0, 45.0, 130.0, -60.0])
def test_rotation_measured_by_zxing(clean: tuple[Image, CodeLayout], degrees: float) -> None:
    frame, layout = clean
    out = apply(frame, layout, Degradation(rotation_deg=degrees)).image
    code = read_zxing(out)
    assert code.text == PAYLOAD
    top = _point(code.position.top_right) - _point(code.position.top_left)
    measured = math.degrees(math.atan2(-top[1], top[0]))  # image y grows downwards
    diff = (measured - degrees + 180) % 360 - 180
    assert abs(diff) < 1.5


@pytest.mark.parametrize("degrees", [20.0, 35.0, 50.0])
def test_tilt_measured_by_zxing(clean: tuple[Image, CodeLayout], degrees: float) -> None:
    frame, layout = clean
    out = apply(frame, layout, Degradation(tilt_deg=degrees)).image
    code = read_zxing(out)
    p = code.position
    width = (
        np.linalg.norm(_point(p.top_right) - _point(p.top_left))
        + np.linalg.norm(_point(p.bottom_right) - _point(p.bottom_left))
    ) / 2
    # Screen turned by t about the vertical centre line, pinhole at distance D: a point
    # x from the axis lands at D x cos t / (D + x sin t). Solve the symbol's projected
    # width for t (it shrinks monotonically with t).
    distance = VIEW_DISTANCE_FRAMES * frame.shape[1]
    half = layout.side_px / 2

    def projected(t: float) -> float:
        u = lambda x: distance * x * math.cos(t) / (distance + x * math.sin(t))  # noqa: E731
        return u(half) - u(-half)

    lo, hi = 0.0, math.radians(85)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if projected(mid) > width else (lo, mid)
    assert math.degrees(lo) == pytest.approx(degrees, abs=1.5)
    # and the near edge looks taller than the far one
    left = np.linalg.norm(_point(p.bottom_left) - _point(p.top_left))
    right = np.linalg.norm(_point(p.bottom_right) - _point(p.top_right))
    assert left > right


@pytest.mark.parametrize("pct", [2.0, 5.0, 15.0, 40.0])
def test_occlusion_covers_the_requested_share_of_the_symbol(
    clean: tuple[Image, CodeLayout], pct: float
) -> None:
    frame, layout = clean
    out = apply(frame, layout, Degradation(occlusion_pct=pct, seed=3)).image
    side = layout.side_px
    symbol = out[layout.y : layout.y + side, layout.x : layout.x + side]
    smudge = symbol == 128  # mid grey: no module is ever this level
    assert 100 * smudge.mean() == pytest.approx(pct, rel=0.03, abs=0.1)
    if pct <= 5:  # a small smudge fits between the function patterns
        px = layout.module_px
        function = np.kron(~layout.data, np.ones((px, px), dtype=bool))
        assert not (smudge & function).any()


def test_glare_adds_the_requested_peak(clean: tuple[Image, CodeLayout]) -> None:
    frame, layout = clean
    base = apply(frame, layout, Degradation(luminance=0.5)).image.astype(float)
    out = apply(frame, layout, Degradation(luminance=0.5, glare=0.4)).image.astype(float)
    added = out - base
    assert added.max() == pytest.approx(0.4 * 255, abs=1.5)
    assert added.min() >= 0


def test_seed_makes_frames_reproducible(clean: tuple[Image, CodeLayout]) -> None:
    frame, layout = clean
    d = Degradation(occlusion_pct=5, glare=0.3, noise_sigma=10, seed=4)
    a = apply(frame, layout, d).image
    assert np.array_equal(a, apply(frame, layout, d).image)
    assert not np.array_equal(a, apply(frame, layout, d.with_seed(5)).image)


def test_compose_parse_and_describe() -> None:
    both = compose(Degradation(blur_sigma=1.0), Degradation(contrast=0.4, seed=2))
    assert both.active() == {"blur_sigma": 1.0, "contrast": 0.4}
    assert both.seed == 2
    with pytest.raises(ValueError, match="both set blur_sigma"):
        compose(Degradation(blur_sigma=1.0), Degradation(blur_sigma=2.0))
    assert Degradation.parse("blur_sigma=1, contrast=0.4; seed=2") == both
    assert Degradation.parse("none") == Degradation()
    assert both.describe() == "blur_sigma=1, contrast=0.4"
    assert Degradation().describe() == "none"
    for bad, words in [
        ("blurr=1", "expected NAME=NUMBER"),
        ("blur_sigma", "expected NAME=NUMBER"),
        ("blur_sigma=x", "not a number"),
        ("blur_sigma=1, blur_sigma=2", "twice"),
        ("contrast=0", "out of range"),
        ("occlusion_pct=90", "out of range"),
    ]:
        with pytest.raises(ValueError, match=words):
            Degradation.parse(bad)
    assert set(AXES) == {s.axis for s in IN_SPEC}


def _spec_edge(axis: str) -> Degradation:
    spec = next(s for s in IN_SPEC if s.axis == axis)
    value = 135.0 if axis == "rotation_deg" else spec.limit
    return Degradation(**{axis: value})


@pytest.mark.parametrize("axis", [s.axis for s in IN_SPEC])
def test_independent_decoder_reads_every_axis_at_its_spec_limit(
    clean: tuple[Image, CodeLayout], axis: str
) -> None:
    frame, layout = clean
    degradation = _spec_edge(axis)
    assert within_spec(degradation)
    for seed in range(3):
        out = apply(frame, layout, degradation.with_seed(seed)).image
        assert read_zxing(out).text == PAYLOAD, f"{degradation.describe()} seed {seed}"


@pytest.mark.parametrize(
    "text",
    [
        "blur_sigma=5",
        "tilt_deg=80",
        "occlusion_pct=40",
        "luminance=0.03, noise_sigma=8",
        "contrast=0.05, noise_sigma=25",
    ],
)
def test_beyond_spec_examples_defeat_the_independent_decoder_too(
    clean: tuple[Image, CodeLayout], text: str
) -> None:
    """The feature's beyond-spec codes are unreadable, not just unread by OpenCV."""
    frame, layout = clean
    degradation = Degradation.parse(text)
    assert not within_spec(degradation)
    for seed in range(3):
        out = apply(frame, layout, degradation.with_seed(seed)).image
        assert not zxingcpp.read_barcodes(out), f"zxing-cpp read {text} seed {seed}"


def test_png_round_trip(clean: tuple[Image, CodeLayout]) -> None:
    import cv2

    frame, _ = clean
    png = to_png(frame)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(decoded, frame)
