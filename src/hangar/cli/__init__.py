"""The ``hangar`` command line: one module per noun."""
