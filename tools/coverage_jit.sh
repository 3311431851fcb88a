#!/usr/bin/env bash
# Line coverage of the compiled kernels. With NUMBA_DISABLE_JIT=1 every @jit/@pjit kernel runs
# as plain Python (prange as range), so coverage.py sees the lines Numba would compile; the
# kernel tests then run against those lines. Usage (from anywhere, in the test environment):
#   tools/coverage_jit.sh            # kernel tests, then the report (prints "TOTAL ... NN%")
#   tools/coverage_jit.sh -x -k norm # extra arguments go to pytest
# Not covered: the Cython .pyx sources (they would need a linetrace build) and the policy of
# Numba's compiled variants themselves (a JIT-off run takes the same branches in Python).
set -euo pipefail
cd "$(dirname "$0")/.."
export NUMBA_DISABLE_JIT=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python -m coverage erase
status=0
python -m coverage run -m pytest -q -p no:cacheprovider \
    tests/test_fast_kernels.py tests/test_fast_conv_pool.py tests/test_kernel_policy.py "$@" || status=$?
python -m coverage report
exit "$status"  # the report is printed either way; a failing test still fails the script
