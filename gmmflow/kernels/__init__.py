"""Compiled kernels (numba): optional, imported lazily by the numerics that use them.

Each module here compiles one loop that ``gmmflow.core`` also implements in
pure numpy (the reference, and the fallback where numba is missing); the
core module imports the kernel inside a function and uses the numpy loop when
the import fails. Kernels import numpy and numba only, nothing from gmmflow.
"""
