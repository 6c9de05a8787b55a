#!/bin/sh
# Screenshots of the window for the README: the shipped sample (or BUNDLE) at 1600x1000 and 1280x720, light and
# dark, under a virtual X display, with the project's own .venv. Fails loudly when the window did not start
# or a picture came out blank. Needs xvfb-run and ImageMagick (`import`, `identify`).
# Usage: sh resources/screenshot.sh [BUNDLE]     Output: resources/screenshot-<size>-<theme>.png
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python="$repo/.venv/bin/python"
[ -x "$python" ] || { echo "screenshot.sh: $python not found: run 'bash .ci/setup' first" >&2; exit 1; }
for tool in xvfb-run import identify; do
    command -v "$tool" >/dev/null || { echo "screenshot.sh: $tool is not installed" >&2; exit 1; }
done
bundle=${1:-"$here/sample"}
outdir="$here"
work=$(mktemp -d)  # fresh window state and recent list: the picture does not depend on past runs
trap 'rm -rf "$work"' EXIT
export REGPACK_PYTHON="$python" REGPACK_BUNDLE="$bundle" XDG_CONFIG_HOME="$work"

shoot() {  # shoot WIDTH HEIGHT THEME
    out="$outdir/screenshot-$1x$2-$3.png"
    rm -f "$out"
    REGPACK_SIZE="$1x$2" REGPACK_THEME="$3" REGPACK_OUT="$out" REGPACK_LOG="$work/gui.log" \
        xvfb-run -a -s "-screen 0 $1x$2x24" sh -c '
        "$REGPACK_PYTHON" -m regpack.gui --theme "$REGPACK_THEME" "$REGPACK_BUNDLE" >"$REGPACK_LOG" 2>&1 &
        app=$!
        sleep 6
        if ! kill -0 "$app" 2>/dev/null; then
            echo "screenshot.sh: the window did not start ($REGPACK_SIZE, $REGPACK_THEME):" >&2
            cat "$REGPACK_LOG" >&2
            exit 1
        fi
        import -window root "$REGPACK_OUT"
        kill "$app"
        wait "$app" 2>/dev/null || true
    '
    # A window that never drew leaves one colour on the whole screen: refuse it.
    colours=$(identify -format '%k' "$out")
    if [ "$colours" -lt 16 ]; then
        echo "screenshot.sh: $out has only $colours colours: the window did not draw" >&2
        exit 1
    fi
    echo "wrote $out ($colours colours)"
}

for size in 1600x1000 1280x720; do
    for theme in light dark; do
        shoot "${size%x*}" "${size#*x}" "$theme"
    done
done
