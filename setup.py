"""Build the Cython kernels (im2col/col2im, pooling, FP environment, blocked direct convolution) with OpenMP.

``pip install -e .`` / ``pip install .`` run this; for a source checkout use
``python setup.py build_ext --inplace`` (the .so lands next to the .pyx under src/).
Metadata lives in pyproject.toml; this file only declares the extensions.
"""

import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args, link_args = ["/O2", "/openmp"], []
elif sys.platform == "darwin":
    # Apple clang needs libomp (brew install libomp) for -fopenmp
    compile_args, link_args = ["-O3", "-Xpreprocessor", "-fopenmp"], ["-lomp"]
else:
    compile_args, link_args = ["-O3", "-fopenmp"], ["-fopenmp"]

extra = os.environ.get("FASTNET_CFLAGS")  # e.g. "-march=native" for a local build
if extra:
    compile_args += extra.split()

EXTENSIONS = [
    Extension(
        f"fastnet._kernels.fast.{name}",
        [f"src/fastnet/_kernels/fast/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ("_im2col", "_pool", "_fpenv", "_blocked_conv")
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    ),
)
