# Sourced by the .ci validators: a virtualenv holding pinned PyPI requirements.
#
#   pinned_venv DIR REQUIREMENT...
#
# Reuses DIR while it holds exactly these requirements; otherwise recreates it and installs
# them (deploy/local/stack.sh installs python3-venv). Calls the sourcing script's `die` and
# `log`.
pinned_venv() {
    local venv=$1
    shift
    if [[ "$(cat "$venv/.requirements" 2>/dev/null)" != "$*" ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed (run deploy/local/stack.sh)"
        log "installing $* into $venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2 ||
            die "pip install $* failed"
        echo "$*" >"$venv/.requirements"
    fi
}
