"""coordbot: keeps a multi-department government work plan moving."""

__version__ = "0.1.0"
