"""The Python API: open a model, turn a photo (or a list) into its garment image, dress a
person in a garment; and the folder jobs of ``extract`` and ``tryon``.

    from clothes_extractor import dress, dress_folder, extract_folder, extract_garment, extract_urls, new_session

    garment = extract_garment("photo.jpg")                       # bundled models, best provider
    with new_session("generator", provider="cpu") as generator:
        garments = extract_garment([photo_a, photo_b], generator=generator)
    dressed = dress("person.jpg", garment)                       # stage two: try it on
    summary = extract_folder("photos/", "garments/")             # a folder, as extract does it
    summary = dress_folder("persons/", "garment.png", "dressed/")  # ... and as tryon does it
    summary = extract_urls("https://shop.example/feed.tsv", "garments/")  # a shop's feed, fetched as it goes

A photo or mask is a path, bytes (an encoded image) or a PIL image. The fitting, the mask
rules and the models are those of ``extract``: the same photo gives the same pixels.
``photos``: one photo (or a list) at a time; ``folders``: the folder jobs; ``urls``: the
folder job of a list of URLs (``web``: photos at http(s) addresses; ``feed``: a shop's list).
"""

__all__ = ["PhotoLike", "dress", "dress_folder", "extract_folder", "extract_garment", "extract_urls", "new_session"]


def __getattr__(name: str):
    """The API's functions, imported on first use: the command line imports ``api.web``,
    ``api.fetches`` and ``api.feed`` (a feed's fetches) without the models' modules."""
    if name in ("dress_folder", "extract_folder"):
        from . import folders

        return getattr(folders, name)
    if name == "extract_urls":
        from . import urls

        return urls.extract_urls
    if name in __all__:
        from . import photos

        return getattr(photos, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
