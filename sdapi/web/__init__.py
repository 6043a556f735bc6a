"""The built-in page's files (HTML, CSS, JavaScript modules), served as they are by :mod:`sdapi.routes.ui`.

A package so that ``importlib.resources`` finds them in a source tree, an editable install and a wheel alike.
"""
