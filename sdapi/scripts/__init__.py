"""A1111's selectable scripts (``script_name`` / ``script_args``): the registry and the X/Y/Z plot."""
