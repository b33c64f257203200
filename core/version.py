"""The app version, kept equal to pyproject.toml's by a test; every export carries it."""

VERSION = "0.1.0"
