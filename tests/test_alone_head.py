"""The parser's ``alone`` head (``train --alone-head``, ``train.alone``): fitted anew on the
frozen bundled parser with drawn pairs, exported, and served beside the parse it leaves as it
was; the network, the contract's ``alone`` output and the command's refusals."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from clothes_extractor.data.synth import synth_sample, write_synthetic
from clothes_extractor.errors import ContractError
from clothes_extractor.runtime.contract import FitSettings, ModelContract
from clothes_extractor.runtime.fitting import letterbox_for
from clothes_extractor.runtime.session import ModelSession
from clothes_extractor.tasks import PARSER_CLASSES
from clothes_extractor.train.alone_head import AloneHead
from clothes_extractor.train.networks import UNet, UNetConfig, photo_to_unit


def cli(*args) -> Result:
    """The command in this process (``run_cli`` blocks torch, which training needs)."""
    from clothes_extractor.cli import cli as command

    return CliRunner().invoke(command, [str(a) for a in args])


def test_the_head_reads_the_parse_without_changing_it():
    torch.manual_seed(0)
    config = UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3, classes=8, dropout=False)
    parser = UNet(config).eval()
    with_head = UNet(dataclasses.replace(config, alone=True)).eval()
    with_head.load_state_dict(parser.state_dict(), strict=False)
    x = photo_to_unit(torch.randint(0, 256, (2, 64, 48, 3), dtype=torch.uint8))
    logits, pooled = with_head.parse(x)
    assert torch.equal(logits, parser(x))
    assert pooled.shape == (2, 2 * (8 + 16))  # the two deepest levels (8 channels at 1/4, 16 at 1/8): mean, max
    features = AloneHead.features(pooled, torch.softmax(logits, 1).mean((2, 3)))  # and the 8 class shares
    assert features.shape == (2, 2 * (8 + 16) + 8) and torch.allclose(features[:, -8:].sum(1), torch.ones(2))
    assert with_head.alone_head.classify(features).shape == (2,)
    with pytest.raises(ValueError, match="human parser"):
        UNetConfig(task="segmenter", alone=True)


def test_the_contract_serves_alone_as_one_value_per_image():
    parse = FitSettings(method="letterbox", pad="border")
    contract = ModelContract(task="segmenter", height=64, width=48, fit=parse, labels=PARSER_CLASSES, alone=True)
    assert [(s.name, s.plane(contract.size)) for s in contract.outputs] == [
        ("mask", (64, 48)), ("labels", (64, 48)), ("alone", (1, 1)),
    ]  # fmt: skip
    image = [("image", "tensor(uint8)", ["batch", 64, 48, 3])]
    planes = [(n, "tensor(uint8)", ["batch", 64, 48, 1]) for n in ("mask", "labels")]
    contract.check_graph(image, [*planes, ("alone", "tensor(uint8)", ["batch", 1, 1, 1])])
    with pytest.raises(ContractError, match=r"'alone' has shape \['batch', 64, 48, 1\], must be \[batch, 1, 1, 1\]"):
        contract.check_graph(image, [*planes, ("alone", "tensor(uint8)", ["batch", 64, 48, 1])])
    with pytest.raises(ContractError, match="parser's feature"):
        ModelContract(task="segmenter", height=64, width=48, fit=parse, alone=True)  # a garment segmenter: no classes
    with pytest.raises(ContractError, match="parser's feature"):
        ModelContract(task="generator", height=64, width=48, alone=True)


def test_a_head_trained_on_the_bundled_parser_serves_beside_its_parse(segmenter_path, tmp_path):
    data = tmp_path / "synthetic"
    write_synthetic(data, 40, seed=4)
    run = tmp_path / "run"
    done = cli(
        "train", "--task", "segmenter", "--alone-head", "--init", segmenter_path, "--data", data, "-o", run,
        "--epochs", "100",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "garments shown alone found" in done.output
    metrics = json.loads((run / "metrics.json").read_text())
    # 38 training pairs (2 held out) and 4 drawn ones: a catalog image and a photo of each
    assert metrics["train"]["catalogs"] == metrics["train"]["photos"] == 38 + 4
    assert metrics["train"]["accuracy"] > 0.9
    assert sum(int(v.split()[-1]) for v in metrics["validation"]["said_alone_by_kind"].values()) == 2 * (2 + 1)
    served = tmp_path / "parser.onnx"
    done = cli("export", run / "best.pt", "-o", served)
    assert done.exit_code == 0, done.output
    bundled, headed = ModelSession(segmenter_path, "cpu"), ModelSession(served, "cpu")
    assert headed.contract.alone and headed.contract.weights_sha256 != bundled.contract.weights_sha256
    assert headed.contract.training["alone_head"]["train_pairs"] == 38  # its own head's record, not the bundled's
    assert headed.contract.training["validation"] == bundled.contract.training["validation"]  # the parser's own
    photos = [synth_sample(i, seed=9)[j] for i in range(4) for j in (0, 2)]  # worn, then alone
    planes = np.stack([letterbox_for(p, bundled.contract.size, bundled.contract.fit)[0] for p in photos])
    before, after = bundled.run(image=planes), headed.run(image=planes)
    assert set(after) == {"mask", "labels", "alone"} and after["alone"].shape == (8, 1, 1, 1)
    assert np.array_equal(before["mask"], after["mask"]) and np.array_equal(before["labels"], after["labels"])
    said = after["alone"][:, 0, 0, 0].astype(int)
    assert said[1::2].min() > said[0::2].max(), said  # fitted on drawn pairs: their catalog images above their photos


def test_the_command_refuses_what_a_head_cannot_use(segmenter_path, tiny_model_path, tmp_path):
    data = tmp_path / "synthetic"
    write_synthetic(data, 4, seed=4)
    common = ("train", "--task", "segmenter", "--alone-head", "--data", data, "-o", tmp_path / "run")
    done = cli(*common)
    assert done.exit_code == 2 and "--init PARSER" in done.output
    done = cli(*common, "--init", segmenter_path, "--arch", "flow", "--batch-size", "4")
    assert done.exit_code == 2 and "it takes no --arch, --batch-size" in done.output
    done = cli(*common, "--init", tiny_model_path)
    assert done.exit_code == 1 and "needs a human parser" in done.output
    assert not (tmp_path / "run" / "best.pt").exists()


def test_busy_scenes_put_a_garment_alone_or_a_person_in_front_of_a_busy_backdrop(tmp_path):
    """The head's ``busy`` scenes: a catalog garment keeps its pixels and gets a busy backdrop;
    a photo keeps its person (from its label map) and gets one around it; a photo whose person
    is not known stays whole, not cut out by a guess."""
    from PIL import Image

    from clothes_extractor.eval.datasets import Sample
    from clothes_extractor.train.alone import catalog_scene, dataset_pairs, photo_scene, synthetic_pairs

    catalog = np.full((64, 48, 3), 255, np.uint8)
    catalog[10:54, 8:40] = (200, 30, 40)
    scene = np.asarray(catalog_scene(Image.fromarray(catalog), "busy", np.random.default_rng(0)))
    assert (scene[12:52, 10:38] == (200, 30, 40)).all()
    assert (scene[:, :6] != 255).any(axis=-1).mean() > 0.9 and scene[:, :6].std() > 5  # busy, not white

    labels = np.zeros((64, 48), np.uint8)
    labels[4:14, 18:30] = 13  # a face (LIP labels)
    labels[16:64, 10:38] = 5  # a top
    Image.fromarray(labels).save(tmp_path / "parse.png")
    photo = np.full((64, 48, 3), 230, np.uint8)
    photo[16:64, 10:38] = (20, 90, 160)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(catalog).save(tmp_path / "cloth.png")
    sample = Sample(tmp_path / "photo.png", tmp_path / "parse.png", "parse", tmp_path / "cloth.png")
    ((_, made, person),) = dataset_pairs([sample])
    scene = np.asarray(photo_scene(made(), "busy", np.random.default_rng(0), person))
    assert (scene[17:63, 11:37] == (20, 90, 160)).all() and (scene[5:13, 19:29] == 230).all()
    assert (scene[:, :8] != 230).any(axis=-1).mean() > 0.9
    unknown = Sample(tmp_path / "photo.png", tmp_path / "photo.png", "file", tmp_path / "cloth.png")
    assert dataset_pairs([unknown])[0][2] is None and synthetic_pairs(1, 0, (64, 48))[0][2] is None
    assert np.array_equal(np.asarray(photo_scene(made(), "busy", np.random.default_rng(0), None)), photo)


def test_full_length_scenes_draw_a_thigh_cut_person_down_to_two_feet(monkeypatch):
    """The head's ``full length`` scenes: a photo cut at the thighs goes on to the feet, two legs
    in its bottom rows' colours (or, ``LIGHT_LEGS`` of them, light trousers near the wall's
    colour) on its wall, in a portrait frame the person is narrow in; a photo whose person does
    not reach its bottom is zoomed out instead."""
    from PIL import Image

    from clothes_extractor.train import alone

    photo = np.full((64, 48, 3), 230, np.uint8)
    photo[4:14, 18:30] = (200, 150, 120)  # a face
    photo[16:48, 10:38] = (20, 90, 160)  # a top
    photo[48:64, 12:36] = (40, 40, 40)  # trousers, cut by the frame
    keep = (photo != 230).any(-1).astype(np.float32)
    for light, seed in itertools.product((0.0, 1.0), range(3)):
        monkeypatch.setattr(alone, "LIGHT_LEGS", light)
        made = alone.photo_scene(Image.fromarray(photo), "full length", np.random.default_rng(seed), lambda: keep)
        scene = np.asarray(made)
        h, w = scene.shape[:2]
        assert 64 * (0.85 + 0.45) <= h <= 64 * 1.75 and 0.69 < w / h < 0.81
        assert ((scene == (20, 90, 160)).all(-1)).sum() == 32 * 28  # the top, every pixel of it
        assert (scene[:, :3] == 230).all() and (scene[-1] != 230).any()  # the wall around, shoes at the bottom
        row = scene[int(h * 0.85)].astype(int)  # well below the photo
        if light:  # light trousers: nothing of the dark ones
            assert row.min() > 100
            continue
        person = (np.abs(scene.astype(int) - 230).max(-1) > 12).any(0).nonzero()[0]
        assert person[-1] - person[0] < 0.6 * w  # narrow in its frame
        legs = np.abs(row - 40).max(-1) < 20  # the trousers' colour
        runs = np.diff(np.concatenate([[0], legs.astype(int), [0]]))
        assert (runs == 1).sum() == 2  # two legs, apart
    without = np.full((64, 48, 3), 230, np.uint8)
    without[10:40, 10:38] = (20, 90, 160)
    zoomed = np.asarray(alone.photo_scene(Image.fromarray(without), "full length", np.random.default_rng(0), None))
    assert 64 * 1.2 <= zoomed.shape[0] <= 64 * 2
    assert zoomed.shape[1] / zoomed.shape[0] == pytest.approx(48 / 64, abs=0.02)
