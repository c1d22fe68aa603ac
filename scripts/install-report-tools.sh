#!/usr/bin/env bash
# The installer ships in the package (hil/tools/); from a checkout it installs into .tools here.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HIL_TOOLS_DIR="${HIL_TOOLS_DIR:-$REPO/.tools}" exec bash "$REPO/hil/tools/install-report-tools.sh" "$@"
