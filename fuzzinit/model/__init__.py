"""The reference model of CPU and kernel: a pure function over int state.

Compiled by mypyc when built (see tests/test_compiled.py); only relative
imports inside this package so that a copy of it compiles on its own.
"""
