# Sourced by scripts/demo, scripts/test and scripts/lock: make .venv with exactly the versions in
# requirements.lock (hashes checked), then hyperhive itself, and bubblewrap when it can be
# installed. Idempotent; re-installs when pyproject.toml or the lock changes.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
# The files pip downloaded from the lock: the install comes from here, and the tests check the
# lock's and the Nix pins' hashes against these files without the network.
WHEELHOUSE="$ROOT/.cache/wheels"
PY=${PYTHON:-python3}

say() { if [ -t 1 ]; then printf '\033[1;34m==>\033[0m %s\n' "$*"; else printf '==> %s\n' "$*"; fi; }

ensure_venv() {
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "hyperhive needs Python >= 3.11; $PY is $("$PY" --version 2>&1)" >&2
        exit 1
    fi
    local stamp="$VENV/.hyperhive-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ] && [ "$stamp" -nt "$LOCK" ] \
        && [ -x "$VENV/bin/hivectl" ]; then
        return
    fi
    say "installing requirements.lock and hyperhive into a new .venv"
    # A new venv each time: installing over an old one would keep packages the lock no longer has.
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || {
        echo "could not create a virtualenv; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    }
    local pip=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
    # Every file is checked against the lock's hashes, on download and again on install; the lock
    # names every dependency, so nothing unpinned can come in.
    "${pip[@]}" download --require-hashes --only-binary=:all: --dest "$WHEELHOUSE" -r "$LOCK"
    "${pip[@]}" install --require-hashes --only-binary=:all: --no-index --find-links "$WHEELHOUSE" -r "$LOCK"
    # The project itself adds nothing: its requirements are all in the lock, and it builds with
    # the locked setuptools.
    "${pip[@]}" install --no-deps --no-build-isolation --no-index -e "$ROOT"
    touch "$stamp"
}

# ensure_tool COMMAND DEBIAN-PACKAGE WHY: install the package with apt-get when the command is
# missing and we may (root, or passwordless sudo); otherwise say what is missing and carry on.
ensure_tool() {
    command -v "$1" >/dev/null && return
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
        say "installing $2 ($3)"
        $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "$2" >/dev/null
    fi
    command -v "$1" >/dev/null || echo "note: $2 is not installed: $3" >&2
}

ensure_bwrap() { ensure_tool bwrap bubblewrap "the agents' sandbox; without it they run unsandboxed"; }
ensure_nix() { ensure_tool nix-instantiate nix-bin "the tests parse and evaluate the .nix files with it"; }
# Debian's chromium, driven by Playwright (a pinned dev dependency) in the dashboard's browser tests.
# Never `playwright install`: it downloads a browser build, which these machines cannot fetch.
ensure_openssl() { ensure_tool openssl openssl "the TLS tests make a test CA with it"; }
ensure_chromium() { ensure_tool chromium chromium "the dashboard's browser tests drive it"; }
# PostgreSQL for the broker's second engine: the tests start their own server (initdb, pg_ctl in a
# temp dir). Debian keeps those off PATH, under /usr/lib/postgresql/<version>/bin.
ensure_postgres() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return
    command -v initdb >/dev/null && return
    ensure_tool pg_ctlcluster postgresql "the broker's tests run on PostgreSQL too"
}

# The real claude-code the tests drive (against a fake Messages API they serve on 127.0.0.1).
# Pinned exactly: its stream-json events, flags and settings are the contract the driver relies on.
CLAUDE_CODE_VERSION=2.1.332
TOOLS="$ROOT/.tools"
CLAUDE="$TOOLS/node_modules/.bin/claude"

# ensure_claude: install @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into .tools/ (a project-local
# npm prefix, gitignored) unless that exact version is there; npm comes from Debian when missing.
ensure_claude() {
    if [ -x "$CLAUDE" ] && [ "$("$CLAUDE" --version 2>/dev/null)" = "$CLAUDE_CODE_VERSION (Claude Code)" ]; then
        return
    fi
    ensure_tool npm npm "installs claude-code, which the claude tests run"
    command -v npm >/dev/null || return 0
    say "installing claude-code $CLAUDE_CODE_VERSION into .tools (about 400 MB)"
    mkdir -p "$TOOLS"
    # --prefix keeps it out of the machine's global node_modules; the native binary comes as an
    # optional dependency from the registry and the postinstall puts it in place of the stub.
    npm install --prefix "$TOOLS" --no-audit --no-fund --no-save --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >/dev/null
    "$CLAUDE" --version >/dev/null || {
        echo "claude-code $CLAUDE_CODE_VERSION did not install into $TOOLS" >&2
        exit 1
    }
}
