#!/usr/bin/env bash
# One-stop set-up for a fresh Debian/Ubuntu machine (and fast when already done):
# system packages the sim rig needs, the project venv, the Allure report tools.
# Called by `make selfcheck`, `make test` and .ci/run; safe to run again.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# System packages: PC/SC middleware and the virtual reader (card slots), the
# headers pyscard builds against, Node for the report generator, Java for Allure 2,
# Xvfb for the QR screen's window driver test; a CJK font the sim draws its display
# with and Tesseract with its Chinese and English models (the camera's second OCR);
# Chromium for the tests that open the HTML report in a real headless browser
# (tests/integration/test_run_archive.py); Debian's ser2net, the RFC 2217 server the
# remote-serial tests put in front of a terminal's port (tests/integration/test_rfc2217.py)
# and labgrid's exporter serves a place's serial port with (tests/integration/test_labgrid.py).
SYSTEM_PACKAGES=(libpcsclite-dev pcscd vsmartcard-vpcd pcsc-tools xvfb fonts-wqy-microhei
    tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng ser2net)
command -v chromium >/dev/null 2>&1 || SYSTEM_PACKAGES+=(chromium)
command -v node >/dev/null 2>&1 || SYSTEM_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || SYSTEM_PACKAGES+=(npm)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing system packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})" >&2
        exit 2
    fi
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python environment: reinstall only when pyproject.toml changed.
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.pos-hil-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    echo "setup: installing pos-hil and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    # pyserial and labgrid's fork pyserial-labgrid (dev installs labgrid) write the
    # same serial/ files and pip keeps whichever came last: put the fork's (pyserial
    # 3.5 plus labgrid's RFC 2217 fixes) on disk whatever pip's order was
    # (docs/labgrid.md, "pyserial and the fork").
    .venv/bin/python -m pip install -q --force-reinstall --no-deps 'pyserial-labgrid==3.5.0.2'
    rm -f .venv/.pos-hil-*
    touch "$stamp"
fi

# Bytecode for pos-hil's own modules: pip does not compile an editable install, and
# where bytecode is not written (PYTHONDONTWRITEBYTECODE, a tree the runner cannot
# write) every process compiled every module it imports from source, each sim
# terminal's power-on too (about 50 ms of CPU each). Only stale files are rewritten.
.venv/bin/python -m compileall -q hil >/dev/null

bash scripts/install-report-tools.sh
