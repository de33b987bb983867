#!/usr/bin/env bash
# Re-vendor the JavaScript that skullseg inlines into report.html (see src/skullseg/report_html.py).
#
# Source: the npm registry package "three" (MIT licence), fetched with the ordinary npm client.
# Files taken unmodified:
#   build/three.core.min.js                  -> src/skullseg/data/js/three.core.min.js
#   build/three.module.min.js                -> src/skullseg/data/js/three.module.min.js
#   examples/jsm/controls/OrbitControls.js   -> src/skullseg/data/js/OrbitControls.js
#   LICENSE                                  -> src/skullseg/data/js/THREE_LICENSE.txt (+ a note)
# 0.180.0 is one of the last releases that still ships the minified builds (0.187.0 does not).
#
# Usage: bash tools/vendor_js.sh            (run from anywhere; needs npm and network to the registry)
set -euo pipefail

VERSION="${THREE_VERSION:-0.180.0}"
SHASUM="${THREE_SHASUM:-b930cabfb524f6d36bf63e874b4d866888b50487}"  # npm's dist.shasum of 0.180.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/src/skullseg/data/js"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack "three@$VERSION" --silent >/dev/null
tarball="three-$VERSION.tgz"
got="$(sha1sum "$tarball" | cut -d' ' -f1)"
if [[ "$VERSION" == "0.180.0" && "$got" != "$SHASUM" ]]; then
    echo "checksum mismatch for $tarball: $got != $SHASUM" >&2
    exit 1
fi
tar xzf "$tarball"

mkdir -p "$dest"
cp package/build/three.core.min.js "$dest/three.core.min.js"
cp package/build/three.module.min.js "$dest/three.module.min.js"
cp package/examples/jsm/controls/OrbitControls.js "$dest/OrbitControls.js"
{
    echo "three.js $VERSION (npm package \"three\", tarball sha1 $got), vendored by tools/vendor_js.sh:"
    echo "three.core.min.js, three.module.min.js and OrbitControls.js are unmodified copies."
    echo "They are inlined (zlib-compressed, base64) into every skullseg report.html."
    echo
    cat package/LICENSE
} > "$dest/THREE_LICENSE.txt"
echo "vendored three@$VERSION into $dest"
ls -l "$dest"
