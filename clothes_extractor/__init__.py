"""clothes-extractor: photo of a person wearing a garment -> flat catalog image of the garment,
and that garment on another person (try-on).

    from clothes_extractor import dress, dress_folder, extract_folder, extract_garment, new_session

The API is imported on first use, so ``import clothes_extractor`` (and the CLI) stay light.
"""

__version__ = "0.2.0"
__all__ = ["dress", "dress_folder", "extract_folder", "extract_garment", "extract_urls", "new_session"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'clothes_extractor' has no attribute {name!r}")
