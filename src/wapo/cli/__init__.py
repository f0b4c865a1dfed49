"""The ``wapo`` command."""
