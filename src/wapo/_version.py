"""The version of wapo (one place: the package, the CLI and the guest all report it)."""

__version__ = "0.1.0"
