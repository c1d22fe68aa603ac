"""QR scanner bench on the sim rig: time of one show + decode, decode-rate curves per axis.

Starts the sim rig (rigs/sim.toml: terminal process on a pty, QR screen on the
loopback camera channel) and measures, in one run:

- the median wall time of one ``QrScreen.show`` + ``scanner.scan`` (one frame) as the
  rig sees it, and its parts (render + degrade; the terminal's OpenCV decode);
- per degradation axis, the decode rate of the terminal's scanner over N frames a
  level (seeds vary glare spot, smudge position, noise), next to zxing-cpp's rate on
  the very same frames (an independent decoder), and its decode time ratio.

Tables go to stdout; CSV and PNG plots to --out (default reports/bench/qr).
Run: ``.venv/bin/python bench/bench_qr.py [--frames 10] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import zxingcpp

from hil.instruments.qrscreen import QrScreen
from hil.qr.degrade import Degradation
from hil.qr.fixtures import merchant_payload
from hil.qr.sweep import Attempt, run_sweep
from hil.rig import Rig
from hil.suite import DEFAULT_RIG
from hil.terminal import DecodedCode, Terminal

REPO = Path(__file__).resolve().parent.parent

LEVELS: dict[str, list[float]] = {
    "blur_sigma": [0, 0.5, 1, 1.5, 2, 2.5, 3, 4],
    "contrast": [1, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02],
    "luminance": [1, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03],
    "tilt_deg": [0, 20, 30, 40, 50, 55, 60, 70],
    "rotation_deg": [0, 30, 45, 90, 135, 180, 270],
    "glare": [0, 0.25, 0.5, 0.75, 1],
    "occlusion_pct": [0, 2, 5, 8, 10, 12, 15, 20],
    "noise_sigma": [0, 10, 20, 30, 40, 60, 80],
}


def scan_one(terminal: Terminal) -> DecodedCode | None:
    return terminal.scan(2000, max_frames=1).decoded


def bench_show_decode(screen: QrScreen, terminal: Terminal, payload: str, rounds: int) -> None:
    totals, shows, decodes = [], [], []
    for seed in range(rounds):
        started = time.perf_counter()
        screen.show(payload, Degradation(noise_sigma=5, seed=seed))
        shown = time.perf_counter()
        result = scan_one(terminal)
        done = time.perf_counter()
        assert result is not None and result.payload == payload, result
        totals.append((done - started) * 1000)
        shows.append((shown - started) * 1000)
        decodes.append(result.decode_ms)
    print(f"show + decode, {rounds} rounds (median):")
    print(f"  show (render + degrade)          {statistics.median(shows):7.2f} ms")
    print(f"  terminal OpenCV decode           {statistics.median(decodes):7.2f} ms")
    print(f"  show + scanner.scan, wall time   {statistics.median(totals):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rig", default=str(DEFAULT_RIG))
    parser.add_argument("--frames", type=int, default=10, help="frames a level")
    parser.add_argument("--rounds", type=int, default=30, help="show + decode rounds")
    parser.add_argument("--axes", default=",".join(LEVELS))
    parser.add_argument("--out", default=str(REPO / "reports" / "bench" / "qr"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rig = Rig.from_file(args.rig)
    try:
        terminal = rig.start()
        terminal.ensure_idle()
        screen = rig.instrument("qr_screen")
        assert isinstance(screen, QrScreen)
        payload = merchant_payload("dynamic_cny")
        scan_one(terminal)  # warm up the terminal's decoder
        bench_show_decode(screen, terminal, payload, args.rounds)

        zxing_ms: list[float] = []
        opencv_ms: list[float] = []
        for axis in args.axes.split(","):
            zxing_read: dict[float, int] = {}

            def attempt(
                d: Degradation, axis: str = axis, seen: dict[float, int] = zxing_read
            ) -> Attempt:
                frame = screen.show(payload, d)
                started = time.perf_counter()
                found = zxingcpp.read_barcodes(frame.image, formats=zxingcpp.BarcodeFormat.QRCode)
                zxing_ms.append((time.perf_counter() - started) * 1000)
                if found and found[0].text == payload:
                    level = float(getattr(d, axis))
                    seen[level] = seen.get(level, 0) + 1
                result = scan_one(terminal)
                if result is None:
                    return Attempt(None)
                opencv_ms.append(result.decode_ms)
                return Attempt(result.payload, result.decode_ms)

            result = run_sweep(axis, LEVELS[axis], args.frames, attempt, expected=payload)
            print(f"\n{axis}: terminal (OpenCV) decode rate; zxing-cpp on the same frames")
            for line, level in zip(result.table().splitlines()[2:], result.levels, strict=True):
                print(f"{line} | zxing {zxing_read.get(level.level, 0)}/{level.frames}")
            if result.wrong:
                print(f"  !! {result.wrong} wrong payloads")
            (out / f"{axis}.csv").write_text(result.csv(), encoding="utf-8")
            (out / f"{axis}.png").write_bytes(result.plot_png())
        print(
            f"\ndecode time medians: terminal OpenCV {statistics.median(opencv_ms):.2f} ms, "
            f"zxing-cpp {statistics.median(zxing_ms):.2f} ms "
            f"(ratio {statistics.median(opencv_ms) / statistics.median(zxing_ms):.1f}x)"
        )
        print(f"CSV and PNG plots in {out}")
    finally:
        rig.close()


if __name__ == "__main__":
    main()
