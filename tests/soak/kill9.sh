#!/bin/bash
# kill9.sh — the durable store's kill -9 soak (not run by make check):
# tests/e2e/durable.sh with many more kill rounds.  Each round puts crund
# under submission load from 8 connections, kills it with SIGKILL at a
# random moment, restarts it on the same store and checks that every job
# that got a 201 in that round is there; at the end every job must have
# ended, and none may have run twice unless its policy is retry and a kill
# interrupted it.
#
#   tests/soak/kill9.sh [ROUNDS]      # default 1000 (about 40 minutes)
#
# Uses the build in the source tree (./bootstrap && make); for a build
# elsewhere set top_builddir (top_builddir=/path/to/build tests/soak/kill9.sh).
# Prints durable.sh's TAP.
set -eu
cd "$(dirname "$0")/../.."
export top_srcdir=${top_srcdir:-$PWD} top_builddir=${top_builddir:-$PWD}
export CRUND_KILL_ROUNDS=${1:-1000}
exec bash "$top_srcdir/tests/e2e/durable.sh"
