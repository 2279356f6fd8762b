"""Streaming benchmark of the C++ engine vs the eager reference loop (see benchmarks/README.md).

Same options as ``omniforcing-rt bench``; this script just calls it, so the numbers in the README
can be reproduced from a checkout:

    python benchmarks/bench_stream.py --model bench-cpu --compare reference --repeats 3 --json out.json
"""

from __future__ import annotations

import sys

from omniforcing_rt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
