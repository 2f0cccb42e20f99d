#!/usr/bin/env python3
"""Fuzz target: AP bring-up with CR4.FRED pinned, SEV-ES guest (finds the triple fault).

Runs as is (libFuzzer flags as arguments) or through OSS-Fuzz's
compile_python_fuzzer; see fuzz/README in the top-level README.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _target import run  # noqa: E402

if __name__ == "__main__":
    run("fred-pinned-sev-es-ap.toml")
