"""fuzzinit: finds x86 CPU-initialisation orderings that end in a triple
fault. Importing the package chooses the model's build for the process
(fuzzinit/model_build.py) before anything imports the model."""

from fuzzinit import model_build

model_build.select()
