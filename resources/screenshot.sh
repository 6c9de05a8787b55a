#!/bin/sh
# Take resources/screenshot.png: the window on the shipped sample bundle under a virtual X display.
# Needs xvfb-run and ImageMagick's `import`. Usage: sh resources/screenshot.sh [BUNDLE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bundle=${1:-"$here/sample"}
out="$here/screenshot.png"
export REGPACK_SCREENSHOT_OUT="$out" REGPACK_SCREENSHOT_BUNDLE="$bundle"
settings=$(mktemp -d)  # fresh window state and recent list: the picture does not depend on past runs
trap 'rm -rf "$settings"' EXIT
export XDG_CONFIG_HOME="$settings"
cd "$repo"
xvfb-run -a -s "-screen 0 1400x900x24" sh -c '
    python -m regpack.gui -qwindowgeometry 1400x900+0+0 "$REGPACK_SCREENSHOT_BUNDLE" &
    app=$!
    sleep 6
    import -window root "$REGPACK_SCREENSHOT_OUT"
    kill "$app"
    wait "$app" 2>/dev/null || true
'
echo "wrote $out"
