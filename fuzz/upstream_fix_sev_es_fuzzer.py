#!/usr/bin/env python3
"""Fuzz target: AP bring-up with the upstream fix, SEV-ES guest (should find nothing).

Runs as is (libFuzzer flags as arguments) or through OSS-Fuzz's
compile_python_fuzzer; see fuzz/README in the top-level README.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _target import run  # noqa: E402

if __name__ == "__main__":
    run("upstream-fix-sev-es.toml")
