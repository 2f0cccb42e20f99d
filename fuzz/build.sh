#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script: one binary per *_fuzzer.py, with
# the scenario files bundled next to it (the targets look in
# sys._MEIPASS/models).
python3 -m pip install .
for fuzzer in $(find "$SRC/fuzzinit/fuzz" -name '*_fuzzer.py'); do
  compile_python_fuzzer "$fuzzer" --add-data "$SRC/fuzzinit/models:models" \
    --add-data "$SRC/fuzzinit/fuzz/_target.py:."
done
