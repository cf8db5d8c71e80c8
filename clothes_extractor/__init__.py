"""clothes-extractor: photo of a person wearing a garment -> flat catalog image of the garment."""

__version__ = "0.1.0"
