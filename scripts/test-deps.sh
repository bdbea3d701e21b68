#!/usr/bin/env bash
# What the tests need from outside npm, installed when missing: curl and openssl (the http example,
# a TLS certificate), a real nats-server (the NATS transport), chromium (the live page's browser
# test), promtool from prometheus (the /metrics format check) and rustc with cargo (the Rust crate;
# any cargo on PATH will do, rustup's too), all Debian packages. Without
# root or apt-get it only says what is missing; those tests then skip and say why (in CI, fail).
set -euo pipefail
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v python3 >/dev/null || missing+=(python3)
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
command -v cargo >/dev/null || [ -x /usr/bin/cargo ] || missing+=(rustc cargo)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "test-deps: installing ${missing[*]} (apt-get)" >&2
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
fi
