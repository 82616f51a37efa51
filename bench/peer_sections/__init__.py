"""Sections of bench/peers.py: each module defines ``NAME``, ``add_arguments`` and ``run``.

``run(args) -> list[dict]`` returns result rows (``case``, ``pyspec``,
``peer``, ``ratio`` and any extra columns) that peers.py prints as a table.
"""
