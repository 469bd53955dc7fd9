"""The ``lakehouse`` command."""
