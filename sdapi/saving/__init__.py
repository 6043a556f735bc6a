"""Saving generated images into ``outputs/`` as A1111 v1.2.1 does (``save_images: true``): its folder and file
name options, its sequence numbers, the infotext inside each file and the optional ``.txt`` beside it.

Plain Python and Pillow only: saving is not engine work. Every folder is confined by the server's one path guard
(:class:`sdapi.dataset.paths.PathGuard`), so an option or a filename pattern cannot write outside the allowed roots.
"""
