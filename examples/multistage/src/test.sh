#!/bin/sh
# The build stage's tests, run against the built executable (a failing test fails the build).
set -eu
bin=$1
got=$("$bin" tester)
case "$got" in
  "hello, tester (greet "*")") echo "ok - greets by name" ;;
  *) echo "FAIL - unexpected greeting: $got"; exit 1 ;;
esac
[ "$("$bin" a b | wc -l)" -eq 2 ] && echo "ok - one line per name"
