"""hardmine: mine the hard examples of a text classifier on Ray."""

__version__ = "0.1.0"
