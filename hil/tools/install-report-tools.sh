#!/usr/bin/env bash
# Install what `hil` needs to turn allure-results into a single-file HTML report:
#   - the Allure 2 command line, npm package allure-commandline (pinned), in the tools
#     folder: $HIL_TOOLS_DIR, else the per-user ${XDG_DATA_HOME:-~/.local/share}/pos-hil/tools
#   - a Java runtime, only if none works (apt-get, only when running as root)
# Idempotent, quiet on success, and fast when everything is already there.
# Needs node + npm for the first install. Ships inside the hil package, so an installed
# pos-hil runs it (`hil report --install-tools`); a checkout's scripts/install-report-tools.sh
# runs it with HIL_TOOLS_DIR defaulting to the checkout's .tools.
set -euo pipefail

ALLURE_VERSION="2.46.1"

# The same per-user folder hil.htmlreport looks in (a relative XDG_DATA_HOME is ignored).
user_tools_dir() {
    local data_home="${XDG_DATA_HOME:-}"
    case "$data_home" in
        /*) ;;
        *) data_home="$HOME/.local/share" ;;
    esac
    echo "$data_home/pos-hil/tools"
}

TOOLS="${HIL_TOOLS_DIR:-$(user_tools_dir)}"
PKG_JSON="$TOOLS/node_modules/allure-commandline/package.json"
ALLURE_BIN="$TOOLS/node_modules/.bin/allure"

err() { echo "install-report-tools: $*" >&2; }

allure_version() {
    if [ -f "$PKG_JSON" ] && [ -x "$ALLURE_BIN" ]; then
        sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$PKG_JSON" | head -n1
    fi
}

# The allure launcher runs $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH.
java_works() {
    if [ -n "${JAVA_HOME:-}" ]; then
        "$JAVA_HOME/bin/java" -version >/dev/null 2>&1
    else
        java -version >/dev/null 2>&1
    fi
}

# Run a command with its output kept back, shown only if it fails.
quietly() {
    local log status=0
    log="$(mktemp)"
    "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$status"
}

# --- Allure 2 command line ------------------------------------------------------------
if [ "$(allure_version)" != "$ALLURE_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        err "npm is missing: install Node.js 20 with npm, then rerun this script"
        exit 1
    fi
    mkdir -p "$TOOLS"
    exec 9>"$TOOLS/.install.lock"
    flock 9 # another run may be installing right now; then it is done when we get here
    if [ "$(allure_version)" != "$ALLURE_VERSION" ]; then
        if ! quietly npm install --prefix "$TOOLS" --no-audit --no-fund --save-exact \
            --loglevel=error "allure-commandline@$ALLURE_VERSION"; then
            err "npm install allure-commandline@$ALLURE_VERSION failed (see above)"
            exit 1
        fi
        if [ "$(allure_version)" != "$ALLURE_VERSION" ]; then
            err "allure-commandline $ALLURE_VERSION not found in $TOOLS after npm install"
            exit 1
        fi
    fi
    exec 9>&-
fi

# --- Java -----------------------------------------------------------------------------
if ! java_works; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        err "no working Java: install a Java runtime (Debian: apt-get install -y default-jre-headless) or fix JAVA_HOME"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! quietly apt-get -o DPkg::Lock::Timeout=300 update -qq \
        || ! quietly apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends default-jre-headless; then
        err "apt-get install default-jre-headless failed (see above)"
        exit 1
    fi
    if ! java_works; then
        err "Java still does not run after installing default-jre-headless (check JAVA_HOME)"
        exit 1
    fi
fi
