"""The ``recast`` command line."""
