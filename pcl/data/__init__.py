"""Data layer: dataset registry, verified downloads, image I/O, benchmark verification, preparation.

Why no imports here: importing ``pcl.data`` must stay cheap and free of side effects (no PIL, no
network code) so that every submodule can be imported on its own by the CLI and the tests.
"""
