#!/usr/bin/env bash
# Fetch the pinned third-party front-end assets and copy only the files the portal
# serves into static/vendor/ (and axe-core into tests/vendor/ for the e2e checks).
#
# The files it writes are committed; nothing runs this at build or run time.
# To update: change a version below (see `npm view <pkg> versions`), run
#   bash scripts/vendor_assets.sh
# update the paths in templates/base.html if a version directory changed, run the
# e2e tests, and commit static/vendor/ and tests/vendor/ together with this script.
#
# npm is used only to download the published tarballs (`npm pack`); no package is
# installed and no install script runs.
set -euo pipefail
shopt -s inherit_errexit

BOOTSTRAP_VERSION="5.3.8"
HTMX_VERSION="2.0.11"
LIVEKIT_CLIENT_VERSION="2.23.0"
AXE_VERSION="4.14.1"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/static/vendor"
TEST_VENDOR="$ROOT/tests/vendor"

command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# unpack <package> <version> -> prints the unpacked directory
unpack() {
    local pkg="$1" ver="$2" dir="$WORK/$1-$2" tarball
    mkdir -p "$dir"
    tarball="$(cd "$WORK" && npm pack --silent --ignore-scripts "$pkg@$ver" | tail -n 1)"
    tar -xzf "$WORK/$tarball" -C "$dir"
    echo "$dir/package"
}

# Download everything first, so a failed download leaves the vendored files untouched.
bs="$(unpack bootstrap "$BOOTSTRAP_VERSION")"
hx="$(unpack htmx.org "$HTMX_VERSION")"
lk="$(unpack livekit-client "$LIVEKIT_CLIENT_VERSION")"
axe="$(unpack axe-core "$AXE_VERSION")"

# Remove older copies so only the pinned versions remain.
rm -rf "$VENDOR"/bootstrap-* "$VENDOR"/htmx-* "$VENDOR"/livekit-client-*
mkdir -p "$VENDOR" "$TEST_VENDOR"

BS_DIR="$VENDOR/bootstrap-$BOOTSTRAP_VERSION"
mkdir -p "$BS_DIR/css" "$BS_DIR/js"
cp "$bs/dist/css/bootstrap.min.css" "$BS_DIR/css/"
cp "$bs/dist/js/bootstrap.bundle.min.js" "$BS_DIR/js/"
cp "$bs/LICENSE" "$BS_DIR/LICENSE"
# Strip the sourceMappingURL comments: the maps are not vendored, and a missing
# map only makes noise in the browser console.
sed -i '/^\/\*# sourceMappingURL=.*\*\/$/d' "$BS_DIR/css/bootstrap.min.css"
sed -i '/^\/\/# sourceMappingURL=.*$/d' "$BS_DIR/js/bootstrap.bundle.min.js"

HX_DIR="$VENDOR/htmx-$HTMX_VERSION"
mkdir -p "$HX_DIR"
cp "$hx/dist/htmx.min.js" "$HX_DIR/"
cp "$hx/LICENSE" "$HX_DIR/LICENSE"

# livekit-client for the video page: the UMD build (global LivekitClient), without its
# sourceMappingURL line (the map is not vendored).
LK_DIR="$VENDOR/livekit-client-$LIVEKIT_CLIENT_VERSION"
mkdir -p "$LK_DIR"
cp "$lk/dist/livekit-client.umd.js" "$LK_DIR/"
cp "$lk/LICENSE" "$LK_DIR/LICENSE"
sed -i '/^\/\/# sourceMappingURL=.*$/d' "$LK_DIR/livekit-client.umd.js"

cp "$axe/axe.min.js" "$TEST_VENDOR/axe.min.js"
cp "$axe/LICENSE" "$TEST_VENDOR/axe-core.LICENSE"

# VERSIONS.txt: one line per file: name, version, sha256, path (relative to the repo).
{
    echo "# Written by scripts/vendor_assets.sh; do not edit by hand."
    echo "# Files are copied from the packages' published tarballs; in Bootstrap's and"
    echo "# livekit-client's files the sourceMappingURL comment line is removed (the maps are"
    echo "# not vendored)."
    echo "# name version sha256 path"
    for f in "$BS_DIR/css/bootstrap.min.css" "$BS_DIR/js/bootstrap.bundle.min.js"; do
        echo "bootstrap $BOOTSTRAP_VERSION $(sha256sum "$f" | cut -d' ' -f1) ${f#"$ROOT"/}"
    done
    f="$HX_DIR/htmx.min.js"
    echo "htmx.org $HTMX_VERSION $(sha256sum "$f" | cut -d' ' -f1) ${f#"$ROOT"/}"
    f="$LK_DIR/livekit-client.umd.js"
    echo "livekit-client $LIVEKIT_CLIENT_VERSION $(sha256sum "$f" | cut -d' ' -f1) ${f#"$ROOT"/}"
    f="$TEST_VENDOR/axe.min.js"
    echo "axe-core $AXE_VERSION $(sha256sum "$f" | cut -d' ' -f1) ${f#"$ROOT"/}"
} > "$VENDOR/VERSIONS.txt"

cat "$VENDOR/VERSIONS.txt"
