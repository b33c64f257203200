"""The server tests load the same shared models as the core tests (loading is the slow part)."""

from tests.core.conftest import embedded, loaded_tiny  # noqa: F401 (fixtures, used by name)
