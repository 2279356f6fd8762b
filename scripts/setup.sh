#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv and install omniforcing_rt with
# its test tools, building the C++ extension. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_BIN=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
"${PIP[@]}" install --upgrade pip >/dev/null
# torch is pinned: an unpinned torch resolves to a multi-GB CUDA build; 2.13.0 has a CPU wheel.
# The build runs without isolation so it uses these exact versions (see docs: toolchain pitfall 8).
"${PIP[@]}" install "torch==2.13.0" "scikit-build-core>=0.10" "pybind11>=2.13"
"${PIP[@]}" install --no-build-isolation -e ".[test]"
.venv/bin/python -c "import omniforcing_rt._C, omniforcing_rt" >/dev/null
