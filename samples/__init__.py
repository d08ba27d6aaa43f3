"""Small real data sets the repository carries for `devmesh demo` and the tests (see samples/README.md)."""

from pathlib import Path


def sample_path() -> Path:
    return Path(__file__).resolve().parent
