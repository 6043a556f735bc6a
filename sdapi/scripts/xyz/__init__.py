"""A1111 v1.2.1's X/Y/Z plot (``scripts/xyz_grid.py``): axes, values, cells, grid images and the answer."""
