"""Builds the native line-protocol scanner; every other setting lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lakeflux.lineprotocol._scanner",
            sources=["lakeflux/lineprotocol/_scanner.c"],
            # Plain C with the CPython API only; no fast-math: floats must round exactly like float().
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
