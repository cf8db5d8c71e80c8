"""A trained pix2pix U-Net, read back from its served ONNX file, as another network's renderer.

The U-Net the project shipped before the warping generator renders shape and colour well
and blurs prints; the warping generator keeps it as its renderer and learns where to put
the photo's own pixels instead, and the silhouette head keeps it whole and learns its alpha.
It is read from a plain U-Net's file or from the one inside a silhouette model's file
(``architectures.UNET_HOLDERS``). Its export folded BatchNorm into the convolutions, so it
comes back as a U-Net without normalisation (``norm="none"``: a bias on every convolution;
a convolution the export left without one gets zeros), checked against onnxruntime on
seeded inputs before use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..runtime.contract import METADATA_KEY
from ..runtime.session import contract_of
from .architectures import unet_of
from .networks import ServedGenerator, UNet, folded_unet
from .served_init import served_weights


def renderer_record(path: str | Path) -> dict:
    """What a model built on a trained U-Net (``--renderer``) records of it: the file's name
    and the U-Net's own training data and validation, from its contract."""
    training = contract_of(path).training
    return {"file": Path(path).name, **{k: training[k] for k in ("data", "steps", "validation") if k in training}}


def unet_from_onnx(path: str | Path) -> UNet:
    """The U-Net generator of a served ONNX model (``export`` of a pix2pix U-Net), in eval mode."""
    import onnx

    path = Path(path)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        contract = json.loads(meta[METADATA_KEY])
        arch = contract["training"]["architecture"]
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has no clothes-extractor contract naming its architecture") from None
    try:
        ngf, depth, prefix = unet_of(arch)  # the architecture record names its task too
    except ValueError:
        raise CheckpointError(
            f"{path} is not a pix2pix U-Net generator ({contract.get('task')}, {arch.get('name')})"
        ) from None
    net = folded_unet(contract["height"], contract["width"], ngf, depth, arch.get("attention", "none"))
    stored = served_weights(proto, prefix)
    state = net.state_dict()
    missing = []
    for name, value in state.items():
        if name in stored:
            state[name] = torch.from_numpy(stored.pop(name)).reshape(value.shape)
        elif name.endswith(".bias"):
            state[name] = torch.zeros_like(value)
        else:
            missing.append(name)
    if missing or stored:
        raise CheckpointError(
            f"{path}: weights do not map onto the U-Net (missing {missing[:3]}, extra {list(stored)[:3]})"
        )
    net.load_state_dict(state)
    net.eval()
    _check(net, path)
    return net


def _check(net: UNet, path: Path) -> None:
    """The rebuilt network must give the file's own outputs (within a level)."""
    from ..eval.synthetic import seeded_photos
    from ..runtime.session import ModelSession

    images, masks = seeded_photos(net.config.size, 2, seed=5)
    with ModelSession(path, "cpu") as session, torch.no_grad():
        expected = session.run(image=images, mask=masks)["garment"].astype(np.int16)
        got = ServedGenerator(net).eval()(torch.from_numpy(images), torch.from_numpy(masks)).numpy().astype(np.int16)
    if np.abs(got - expected).max() > 2:
        raise CheckpointError(f"{path}: the U-Net rebuilt from the file does not reproduce it")
