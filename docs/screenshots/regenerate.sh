#!/usr/bin/env bash
# Regenerates the console's screenshots in this directory: the browser test
# (cli/tests/web_browser.rs) saves each main page as it checks it. Needs what the test
# needs: root, FUSE, Samba, Debian's chromium and chromium-driver (.ci/run installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
CERFS_REQUIRE_FUSE=1 CERFS_SCREENSHOTS="$here" \
  cargo test -p cerfs --test web_browser -- --nocapture 2>&1 | grep -E '^test |test result'
ls -l "$here"/*.png
