"""``clothes-extractor serve``: the extractor behind HTTP, with a page to try photos in a browser.

FastAPI on uvicorn (the ecosystem's convention for a typed, async Python HTTP API; the
``[serve]`` extra). Requests run the runtime's own stages, so a photo gets the pixels
``extract`` would write; concurrent requests are batched into one model run
(``batcher``), up to the batch size or a few milliseconds of waiting.
"""
