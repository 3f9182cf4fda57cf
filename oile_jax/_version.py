"""The package's version, from its installed metadata (one place: `pyproject.toml`)."""

from importlib import metadata

try:
    __version__ = metadata.version("oile_jax")
except metadata.PackageNotFoundError:  # a source tree on the path, never installed
    __version__ = "0+unknown"
