"""Sweep definitions: each module's ``get_sweep()`` returns the points of one sweep."""
