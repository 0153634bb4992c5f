#!/usr/bin/env bash
# Regenerates docs/dashboard.png, the README's picture of `koncli dashboard`: the
# browser test's screenshot of a namespace holding every kind (headless Chromium; needs
# Debian's chromium and chromium-driver, as the test does).
set -euo pipefail
cd "$(dirname "$0")/.."
KONDUCTOR_WRITE_SCREENSHOT=1 cargo test --locked -p koncli --test dashboard \
  a_person_sees_every_kind_live_in_a_real_browser
echo "wrote docs/dashboard.png"
