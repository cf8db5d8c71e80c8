"""What each network is trained to do: the losses of one batch, per task and architecture.

- segmenter (U-Net): BCE + Dice against the garment mask.
- generator, ``unet`` (pix2pix): L1 (+ SSIM, gradient magnitude similarity, signed edges)
  against the catalog image, PatchGAN.
- generator, ``flow`` (warping): the same image terms on the composed garment, plus the
  sampled photo against the catalog image at every level of the grid pyramid, flow
  smoothness (total variation and second order), a term for the composition mask (on the
  photo where the garment is, or, with ``--composition better``, on whichever of the
  sampled photo and the rendering is nearer the catalog image there), and the silhouette
  (BCE + Dice) for transparency.
- generator, ``silhouette`` (a frozen U-Net with a silhouette head): the silhouette only.
- try-on (``tryon-flow``): the person wearing their own garment is the target; the image
  terms on the dressed person, the warped catalog garment against the worn top at every
  level of the pyramid, the same smoothness, and the composition mask on the warped
  garment where the top is.

Generators and try-on can add a PatchGAN with discriminator feature matching (try-on's
discriminator is conditioned on the painted person). The loop owns
the optimizers; an objective only turns a batch into losses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..tasks import UPPER_CLASS
from .flow import FlowGenerator, warp
from .losses import (
    GANLoss,
    better_source_loss,
    dice_loss,
    feature_matching,
    flow_smoothness,
    gradient_l1,
    gradient_similarity_loss,
    masked_l1,
    pyramid_warp_loss,
    soft_dice,
    ssim,
)
from .networks import generator_input, mask_to_weight, photo_to_unit
from .silhouette import SilhouetteGenerator
from .tryon import relit, tryon_inputs


class Objective:
    """Losses of one batch for ``model`` under the weights of the training config ``cfg``."""

    def __init__(self, cfg: Any, model: torch.nn.Module, device: torch.device, memory_format: torch.memory_format):
        self.cfg, self.device, self.memory_format = cfg, device, memory_format
        self.segmenter = cfg.task == "segmenter"
        self.flow = isinstance(model, FlowGenerator)
        self.silhouette = isinstance(model, SilhouetteGenerator)
        self.tryon = cfg.task == "tryon"
        self.adversarial = not (self.segmenter or self.silhouette) and cfg.gan_weight > 0
        self.gan = GANLoss(cfg.gan_mode)

    def inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch's uint8 NHWC tensors as the network's float NCHW inputs and targets."""
        if self.tryon:
            return self._tryon_inputs(batch)
        photo = photo_to_unit(batch["image"].to(self.device, non_blocking=True))
        photo = photo.contiguous(memory_format=self.memory_format)
        if self.segmenter:
            found = {"photo": photo, "target": mask_to_weight(batch["target"].to(self.device, non_blocking=True))}
            if "labels" in batch:
                found["labels"] = batch["labels"].to(self.device, non_blocking=True)[..., 0].long()
            return found
        weight = mask_to_weight(batch["mask"].to(self.device, non_blocking=True))
        found = {
            "condition": generator_input(photo, weight),
            "target": photo_to_unit(batch["target"].to(self.device, non_blocking=True)),
        }
        if "alpha" in batch:
            found["alpha"] = mask_to_weight(batch["alpha"].to(self.device, non_blocking=True))
        return found

    def _tryon_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def unit(name):
            return photo_to_unit(batch[name].to(self.device, non_blocking=True))

        def weight(name):
            return mask_to_weight(batch[name].to(self.device, non_blocking=True))

        person_side, garment_side = tryon_inputs(
            unit("person"), weight("region"), unit("garment"), weight("garment_mask")
        )
        return {
            "condition": person_side.contiguous(memory_format=self.memory_format),
            "garment_side": garment_side.contiguous(memory_format=self.memory_format),
            "target": unit("person"),  # paired: the person wearing this very garment
            "worn": weight("worn"),
        }

    def forward(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The network's outputs; ``output`` is the image the image losses compare."""
        if self.segmenter:
            return {"logits": model(inputs["photo"])}
        if self.tryon:
            out = model(inputs["condition"], inputs["garment_side"])
            return {**out, "output": out["image"]}
        out = model(inputs["condition"])
        return {**out, "output": out["garment"]} if isinstance(out, dict) else {"output": out}

    def discriminator_loss(self, discriminator, inputs, out) -> torch.Tensor:
        """PatchGAN loss on real and (detached) fake in one forward."""
        condition = inputs["condition"]
        both = discriminator(torch.cat([condition, condition]), torch.cat([inputs["target"], out["output"].detach()]))
        real, fake = both.chunk(2)
        return 0.5 * (self.gan(real.float(), True) + self.gan(fake.float(), False))

    def losses(self, inputs, out, discriminator=None) -> dict[str, torch.Tensor]:
        """Every loss term of the batch, weighted sum under ``total``."""
        if self.segmenter:
            target, logits = inputs["target"], out["logits"].float()
            if "labels" in inputs:  # a parser: every class, and Dice on the garment's probability
                upper = torch.softmax(logits, dim=1)[:, UPPER_CLASS : UPPER_CLASS + 1]
                terms = {"ce": F.cross_entropy(logits, inputs["labels"]), "dice": soft_dice(upper, target)}
                return {**terms, "total": terms["ce"] + terms["dice"]}
            terms = {"bce": F.binary_cross_entropy_with_logits(logits, target), "dice": dice_loss(logits, target)}
            return {**terms, "total": terms["bce"] + terms["dice"]}
        cfg = self.cfg
        if self.silhouette:  # the garment is the frozen U-Net's: only the silhouette learns
            alpha = self._alpha(inputs)
            return {"alpha": (loss := self._silhouette_loss(out, alpha)), "total": loss}
        output, target = out["output"].float(), inputs["target"]
        terms = {"g_l1": (cfg.l1_weight, F.l1_loss(output, target))}
        if cfg.ssim_weight:
            terms["g_ssim"] = (cfg.ssim_weight, 1 - ssim(output, target))
        if cfg.gms_weight:
            terms["g_gms"] = (cfg.gms_weight, gradient_similarity_loss(output, target))
        if cfg.edge_weight:
            terms["g_edge"] = (cfg.edge_weight, gradient_l1(output, target, torch.ones_like(output[:, :1])))
        if self.tryon:
            terms.update(self._tryon_terms(inputs, out))
        elif self.flow:
            terms.update(self._flow_terms(inputs, out))
        if self.adversarial and discriminator is not None:
            terms.update(self._adversarial_terms(discriminator, inputs, output))
        total = sum(weight * value for weight, value in terms.values())
        return {**{name: value for name, (_, value) in terms.items()}, "total": total}

    @staticmethod
    def _alpha(inputs) -> torch.Tensor:
        alpha = inputs.get("alpha")
        if alpha is None:  # data without catalog images has no silhouette: the catalog frame is all garment
            alpha = torch.ones_like(inputs["target"][:, :1])
        return alpha

    @staticmethod
    def _silhouette_loss(out, alpha) -> torch.Tensor:
        alpha_logit = out["alpha_logit"].float()
        return F.binary_cross_entropy_with_logits(alpha_logit, alpha) + dice_loss(alpha_logit, alpha)

    def _flow_terms(self, inputs, out) -> dict[str, tuple[float, torch.Tensor]]:
        cfg = self.cfg
        alpha = self._alpha(inputs)
        if cfg.composition == "better":
            composition = better_source_loss(out, inputs["target"], cfg.composition_block)
        else:  # the photo where the garment is: the rendered image only fills in what the photo lacks
            composition = masked_l1(out["mask"].float(), torch.ones_like(alpha), alpha)
        terms = self._warp_terms(out["grids"], inputs["condition"][:, :3], inputs["target"], alpha)
        if cfg.warp_mask_weight:
            # the photo's garment mask where the grid samples it: the garment inside the
            # silhouette and nothing outside it, so every level's grid finds the garment's outline
            photo_mask = inputs["condition"][:, 3:4].float() * 0.5 + 0.5
            grids = [g.float() for g in out["grids"]]
            shape = pyramid_warp_loss(grids, photo_mask, alpha, torch.ones_like(alpha), padding="zeros")
            terms["warp_mask"] = (cfg.warp_mask_weight, shape)
        return {
            **terms,
            "composition": (cfg.composition_weight, composition),
            "alpha": (cfg.alpha_weight, self._silhouette_loss(out, alpha)),
        }

    def _warp_terms(self, grids, source, target, where) -> dict[str, tuple[float, torch.Tensor]]:
        cfg = self.cfg
        grids = [g.float() for g in grids]
        smooth = [flow_smoothness(g) for g in grids]
        terms = {}
        if cfg.warp_edge_weight:
            sampled = warp(source.float(), grids[-1])
            terms["warp_edge"] = (cfg.warp_edge_weight, gradient_l1(sampled, target, where))
        return {
            **terms,
            "warp": (cfg.warp_weight, pyramid_warp_loss(grids, source.float(), target, where)),
            "tv": (cfg.tv_weight, sum(tv for tv, _ in smooth) / len(smooth)),
            "tv2": (cfg.tv2_weight, sum(second for _, second in smooth) / len(smooth)),
        }

    def _tryon_terms(self, inputs, out) -> dict[str, tuple[float, torch.Tensor]]:
        worn = inputs["worn"]
        garment = inputs["garment_side"][:, :3]
        if "gain" in out:  # (the garment in the person's light, as the network puts it there)
            garment = relit(garment.float(), out["gain"].float())
        terms = self._warp_terms(out["grids"], garment, inputs["target"], worn)
        # the catalog garment where the top is: the rendered image fills in skin and arms
        terms["composition"] = (
            self.cfg.composition_weight,
            masked_l1(out["mask"].float(), torch.ones_like(worn), worn),
        )
        return terms

    def _adversarial_terms(self, discriminator, inputs, garment) -> dict[str, tuple[float, torch.Tensor]]:
        cfg = self.cfg
        fake_features, fake_logits = discriminator.features(inputs["condition"], garment)
        terms = {"g_gan": (cfg.gan_weight, self.gan(fake_logits.float(), True))}
        if cfg.fm_weight:
            with torch.no_grad():
                real_features, _ = discriminator.features(inputs["condition"], inputs["target"])
            terms["g_fm"] = (cfg.fm_weight, feature_matching(fake_features, real_features))
        return terms
