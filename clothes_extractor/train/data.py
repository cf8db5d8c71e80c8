"""PyTorch datasets over the runtime's dataset records, with train-time augmentation.

Photos and masks are decoded and fitted to the model by the runtime's own functions
(``load_sample``, ``fit_sample``), so training sees exactly what serving will. Items are
uint8 NHWC arrays, the served model's own input format; the loop converts them on the
device with the same functions the exported graph uses.

Augmentation randomness comes from ``(seed, epoch, index)`` alone, so a run gives the same
batches whatever the number of loader workers, and a resumed run continues exactly.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..eval.datasets import LABELLED, Sample, fit_sample, load_labels, load_sample, no_masks
from ..runtime.contract import ModelContract
from ..runtime.fitting import border_colour, letterbox_for
from ..runtime.silhouette import garment_silhouette
from .augment import (
    Augmentation,
    augment,
    augment_batch,
    augment_tryon_batch,
    degrade,
    framing_draws,
    resolution_for,
)
from .distributed import to_device

log = logging.getLogger(__name__)


class GarmentDataset(torch.utils.data.Dataset):
    """Items are dicts of uint8 arrays as ``fit_sample`` makes them, keyed by input name.

    Indexed by ``(epoch, index)`` pairs (``EpochSampler`` yields them), so augmentation is a
    pure function of seed, epoch and index. With ``catalogs`` a segmenter item also holds its
    catalog garment fitted as the photo is (``catalog``) and its silhouette
    (``catalog_mask``), for ``--catalogs`` to put in a photo's place.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        contract: ModelContract,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        catalogs: bool = False,
    ):
        self.samples = list(samples)
        self.contract = contract
        self.augmentation = augmentation
        self.seed = seed
        self.catalogs = catalogs and contract.task == "segmenter"
        missing = [s for s in self.samples if s.garment is None] if self.catalogs else []
        if missing:
            raise InputError(
                f"--catalogs needs each sample's catalog garment image (VITON's cloth/): {len(missing)} of "
                f"{len(self.samples)} samples have none, e.g. {missing[0].photo}"
            )
        unmasked = [s for s in self.samples if s.mask_kind == "none"]
        if unmasked:  # (pairs: photo/ and garment/, no mask/)
            raise InputError(
                f"training needs each photo's garment mask, and {no_masks(unmasked[0])}: add them there, white on "
                "the garment, as mask/NAME.png (triplets)"
            )
        unlabelled = [s for s in self.samples if s.mask_kind not in LABELLED] if self._needs_labels else []
        if unlabelled:  # said before any work, not by the first batch (from a worker, with its traceback)
            what = "try-on" if contract.task == "tryon" else "a parser (--parser)"
            raise InputError(
                f"training {what} needs a human parsing of each photo (VITON's image-parse/ or image-parse-v3/, "
                f"Dress Code's label_maps/): {len(unlabelled)} of {len(self.samples)} samples have none, e.g. "
                f"{unlabelled[0].photo} (a mask file says only where the garment is)"
            )

    @property
    def _needs_labels(self) -> bool:
        return bool(self.contract.labels) or self.contract.task == "tryon"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = self.samples[index]
        photo, mask, garment = load_sample(sample)
        labels = None
        if self._needs_labels:
            labels = load_labels(sample)
            if labels is None:
                raise InputError(f"{sample.photo}: its parse map is a colour image; the labels need a palette map")
            labels = labels.resize(photo.size, Image.Resampling.NEAREST)
        if self.contract.task == "tryon":
            return self._tryon_item(photo, garment, labels, epoch, index)
        keep = None
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            segmenter = self.contract.task == "segmenter"
            fill = self.contract.fit.pad_rgb
            if segmenter and self.contract.fit.pad == "border":  # a zoomed-out photo goes on in its backdrop
                fill = border_colour(np.asarray(photo.convert("RGB")))
            settings = self.augmentation
            photo, mask, garment, labels = augment(photo, mask, garment, rng, settings, fill, segmenter, labels)
            keep = None if segmenter else resolution_for(framing_draws(rng, 1, self.augmentation)[0], self.augmentation)
        arrays = fit_sample(photo, mask, garment, self.contract, labels=labels)
        arrays.pop("photo", None)  # training feeds the model-size photo itself (it is ``image``)
        if self.catalogs:
            catalog = letterbox_for(garment, self.contract.size, self.contract.fit)[0]
            arrays["catalog"] = catalog
            arrays["catalog_mask"] = garment_silhouette(catalog).astype(np.uint8)[:, :, None] * 255
        if keep is not None and keep[0] < 1.0:
            arrays["image"] = degrade(torch.from_numpy(arrays["image"].copy())[None], keep)[0].numpy()
        return {name: torch.from_numpy(np.require(a, requirements=["C", "W"])) for name, a in arrays.items()}

    def _tryon_item(self, photo, garment, labels, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """A try-on item: fitted whole (person, region and garment must stay aligned), then
        flipped and colour-changed as one, as the device loader does a batch."""
        arrays = fit_sample(photo, photo, garment, self.contract, labels=labels)
        item = {name: torch.from_numpy(np.require(a, requirements=["C", "W"]))[None] for name, a in arrays.items()}
        if self.augmentation is not None:
            item = augment_tryon_batch(item, np.random.default_rng([self.seed, epoch, index]), self.augmentation)
        return {name: tensor[0] for name, tensor in item.items()}


class EpochSampler(torch.utils.data.Sampler):
    """A seeded shuffle per epoch, sharded across ``world`` processes, resumable mid-epoch.

    Yields ``(epoch, index)``. Every rank gets ``len(dataset) // world`` items, so all ranks
    run the same number of steps.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields ``epoch``'s items from item ``start`` (not batch) on."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.size // self.world - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
            if self.shuffle
            else np.arange(self.size)
        )
        per_rank = self.size // self.world
        mine = order[self.rank :: self.world][:per_rank]
        for index in mine[self.start :]:
            yield self.epoch, int(index)


def preload(
    dataset: GarmentDataset, device: torch.device, workers: int, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """Every item of ``dataset`` decoded and fitted once, stacked as uint8 tensors on ``device``.

    At 256x192 a generator sample is 344 KB (photo, mask, catalog image), so VITON's 7,000
    training pairs take 2.4 GB: nothing for a GPU, and they never cross the bus again.
    Samples that cannot be read (a corrupt photo) are named together, in one ``InputError``.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in _read_every(dataset, workers, batch_size):
        for name, tensor in batch.items():
            parts.setdefault(name, []).append(tensor.to(device))
    return {name: torch.cat(tensors) for name, tensors in parts.items()}


def batches(loader: Iterable[Any]) -> Iterator[Any]:
    """``loader``'s batches. A ``DataLoader`` with worker processes forks them once this process's
    garbage is collected: a forked worker's first collection finalized what it copied, and an
    onnxruntime object among it (a session a test or a run let go, in a reference cycle) waited
    forever in ``pthread_cond_destroy`` for its thread pool's threads, which a fork does not copy
    (a full test run hung so, in a training test's first batch)."""
    if getattr(loader, "num_workers", 0):
        gc.collect()
    return iter(loader)


def readable(dataset: GarmentDataset, workers: int) -> GarmentDataset:
    """``dataset`` once each of its samples was read, or ``InputError`` naming every one that
    cannot be: a streamed run's validation samples, read before training (one met at the first
    validation stopped the run, its first epoch lost)."""
    for _ in _read_every(dataset, workers, 16):
        pass
    return dataset


def _read_every(dataset: GarmentDataset, workers: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``dataset``'s items, read by ``workers`` processes; at the end, every sample
    that could not be read named in one ``InputError`` (not one run to find each)."""
    loader = torch.utils.data.DataLoader(
        _Each(dataset), batch_size=batch_size, num_workers=workers, collate_fn=_gathered
    )
    failed: list[str] = []
    for batch, unread in batches(loader):
        failed += unread
        if batch is not None:
            yield batch
    if failed:
        shown = "; ".join(failed[:10]) + (f"; and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise InputError(
            f"{len(failed)} of the {len(dataset)} samples cannot be read: {shown}. Remove or replace those files "
            "(a photo taken out of the dataset takes its sample out) and run again"
        )


class _Each(torch.utils.data.Dataset):
    """``dataset``'s items; in place of one that cannot be read, why (``preload`` says them all at once)."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor] | str:
        try:
            return self.dataset[index]
        except InputError as exc:
            return str(exc)


def _gathered(items: list[dict[str, torch.Tensor] | str]) -> tuple[dict[str, torch.Tensor] | None, list[str]]:
    """A batch of the items read, and why the others could not be."""
    read = [item for item in items if not isinstance(item, str)]
    return (torch.utils.data.default_collate(read) if read else None), [item for item in items if isinstance(item, str)]


class Substituting(torch.utils.data.Dataset):
    """``dataset``'s items for a streamed training run, in which a sample that cannot be read (a
    corrupt photo met hours into the run) gives its place to the next one that can, so the run
    goes on. Each item says which samples it stands in for, ``"unread"``: their reasons, or ""
    (``LeftOut`` takes it out of the batch, and says each once). ``InputError`` where
    ``TRIES`` samples in a row cannot be read (a folder of them: no training set)."""

    TRIES = 8

    def __init__(self, dataset: GarmentDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor | str]:
        epoch, index = key
        unread: list[str] = []
        for step in range(min(self.TRIES, len(self.dataset))):
            try:
                item: dict[str, torch.Tensor | str] = dict(self.dataset[epoch, (index + step) % len(self.dataset)])
            except InputError as exc:
                unread.append(str(exc))
                continue
            item["unread"] = "\n".join(unread)
            return item
        raise InputError(f"{len(unread)} training samples in a row cannot be read: " + "; ".join(unread))


class LeftOut:
    """The samples a streamed run left out (``Substituting``): ``take`` removes a batch's
    ``"unread"`` list and logs each sample's reason the first time it is met; past ``limit``
    of them (a share of the set, not a file or two) the run stops with them all named."""

    def __init__(self, limit: int):
        self.limit, self.reasons = limit, {}

    def batches(self, loader: Iterable[dict]) -> Iterator[dict[str, torch.Tensor]]:
        """``loader``'s batches (``batches``: its workers forked once the garbage is collected), each
        through ``take``."""
        return map(self.take, batches(loader))

    def take(self, batch: dict) -> dict[str, torch.Tensor]:
        for reason in (r for joined in batch.pop("unread", ()) for r in joined.split("\n") if r):
            if reason not in self.reasons:
                self.reasons[reason] = None
                log.warning("left out of training, another sample in its place: %s", reason)
        if len(self.reasons) > self.limit:
            shown = "; ".join(list(self.reasons)[:10])
            raise InputError(
                f"{len(self.reasons)} training samples cannot be read (more than {self.limit} of them): {shown}. "
                "Remove or replace those files and run again (--data-on-device names every one before training)"
            )
        return batch

    def sum_up(self) -> None:
        """At the end of the run: how many were left out (each was said when met, perhaps pages of progress ago)."""
        if self.reasons:
            log.warning("%d training sample(s) could not be read and were left out", len(self.reasons))


class DeviceLoader:
    """Batches of a dataset held on the device (``preload``), gathered and augmented there.

    Follows ``sampler`` (so the order, the sharding across processes and a mid-epoch
    resume are the loader path's), drops the last partial batch when ``drop_last``;
    augmentation randomness comes from ``(seed, epoch, batch index)``.
    """

    def __init__(
        self,
        arrays: dict[str, torch.Tensor],
        batch_size: int,
        sampler: EpochSampler | None = None,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        fill_rgb: tuple[int, int, int] = (255, 255, 255),
        drop_last: bool = False,
    ):
        self.arrays, self.batch_size, self.sampler = arrays, batch_size, sampler
        self.augmentation, self.seed, self.fill_rgb, self.drop_last = augmentation, seed, fill_rgb, drop_last
        self.size = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        items = len(self.sampler) if self.sampler is not None else self.size
        return items // self.batch_size if self.drop_last else -(-items // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.sampler is None:
            epoch, first, order = 0, 0, list(range(self.size))
        else:
            epoch, first = self.sampler.epoch, self.sampler.start // self.batch_size
            order = [index for _, index in self.sampler]
        device = next(iter(self.arrays.values())).device
        for number in range(len(self)):
            chosen = order[number * self.batch_size : (number + 1) * self.batch_size]
            index = to_device(chosen, device)
            batch = {name: tensor.index_select(0, index) for name, tensor in self.arrays.items()}
            if self.augmentation is not None:
                rng = np.random.default_rng([self.seed, epoch, first + number])
                if "person" in batch:
                    batch = augment_tryon_batch(batch, rng, self.augmentation)
                else:
                    batch = augment_batch(batch, rng, self.augmentation, self.fill_rgb)
            yield batch
