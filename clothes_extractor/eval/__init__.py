"""Torch-free scoring: dataset layouts, image metrics, contact sheets, model evaluation.

Used by ``evaluate``, by training's validation and by ``export``'s checks; it may import the
runtime (fitting, image decoding), never the other way round.
"""
