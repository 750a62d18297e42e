#!/usr/bin/env bash
# Debian packages the tests (and, with `bench`, the benchmarks) start as real processes.
set -euo pipefail
# chromium: headless, it loads the HTML eval report (tests/evals/test_report_browser.py).
want=(redis-server git docker-compose prometheus chromium)
if [[ "${1:-}" == "bench" ]]; then want+=(nginx wrk); fi
missing=()
for p in "${want[@]}"; do
  # a Chromium already on PATH will do (GitHub's runner images ship one outside apt)
  if [[ "$p" == chromium ]] && command -v chromium >/dev/null 2>&1; then continue; fi
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
