"""nanoserve: serve small language and embedding models on your own machines."""

__version__ = "0.1.0"
