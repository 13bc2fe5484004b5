"""cfanet-bench: the proposed CFANet network and the foundation every other layer uses.

Importing this package is cheap: submodules (image I/O, resize, datasets, metrics, checkpoint
loading) are imported where they are used, so one missing optional dependency never breaks
the whole package.
"""

__version__ = "0.1.0"
