"""The reference model of CPU and kernel: a pure function over int state.

Its modules are compiled by mypyc at install (fuzzinit/model_build.py;
this file stays Python) and for tests/test_compiled.py; only relative
imports inside this package so that a copy of it compiles on its own.
"""
