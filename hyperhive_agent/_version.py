"""The package version, in its own module so submodules need not import the package root."""

__version__ = "0.1.0"
