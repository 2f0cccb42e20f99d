#!/usr/bin/env python3
"""Fuzz target: CR pinning gated on cpu_online() without 05243d490bb7,
SEV-SNP (finds the paranoid_entry #UD).

Runs as is (libFuzzer flags as arguments) or through OSS-Fuzz's
compile_python_fuzzer; see fuzz/README in the top-level README.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _target import run  # noqa: E402

if __name__ == "__main__":
    run("pinning-offline-snp-idt.toml")
