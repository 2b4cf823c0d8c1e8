"""Axolotl plugins that medtune's rendered configs list: the imported libraries kept out of the garbage
collector's passes and weights initialised from the recipe's seed (every config), and every packed row trained,
every epoch (configs with sample packing).

Axolotl 0.19's packing sampler packs each epoch's shuffled rows first-fit into bins of `sequence_len`
tokens, groups `micro_batch_size` bins per step (with flash attention: one bin of micro_batch_size x
sequence_len tokens per step), and then
  - drops the last group when it has fewer bins than `micro_batch_size`, and
  - cuts the epoch to the fewest groups any of four trial packings produced (another shuffle can need a
    bin more), with the trainer's step count fixed beforehand from that same floor.
Rows in the bins left over were never trained: 2% of the demo's answer tokens, and up to a step's worth
of rows in any recipe.

On one process this plugin gives the trainer a sampler that packs first-fit-decreasing (longest rows
first: the same bins every epoch; 88 for the demo's rows where Axolotl's needed 90-91), shuffles the
bins each epoch, and yields all of them, the last smaller group included; the trainer then counts its
steps from that sampler. With several processes Axolotl's behaviour stays: every rank must take the
same number of steps.
"""
from __future__ import annotations

import atexit
import gc
import math
import os

import numpy as np
import torch
from axolotl.integrations.base import BasePlugin
from axolotl.utils.samplers.multipack import MultipackBatchSampler, pack_group
from torch.utils.data import RandomSampler

class EveryRowSampler(MultipackBatchSampler):
    """Packs once, longest rows first; each epoch yields every bin, in a new random order."""

    _bins: list[list[int]] | None = None

    def packed_bins(self) -> list[list[int]]:
        if self._bins is None:
            order = np.argsort(-self.lengths, kind="stable")
            packed = pack_group(self.lengths[order], 0, self.batch_max_len, len(order),
                                self.bin_size or self.batch_max_len, False)
            self._bins = [[int(order[i]) for i in b] for b in packed]
        return self._bins

    def generate_batches(self, set_stats: bool = False) -> list[list[list[int]]]:
        if self._batches is not None:
            return self._batches
        bins = self.packed_bins()
        # The global generator, as RandomSampler uses: the trainer seeds it, a resumed run restores it.
        shuffled = [bins[i] for i in torch.randperm(len(bins)).tolist()]
        self._batches = [shuffled[i:i + self.batch_size] for i in range(0, len(shuffled), self.batch_size)]
        if set_stats:
            self.total_tokens_used += int(self.lengths.sum())
            self.total_token_slots += len(bins) * self.batch_max_len
        return self._batches

    def __iter__(self):
        return iter(self.generate_batches(set_stats=True))

    def __len__(self) -> int:
        return math.ceil(len(self.packed_bins()) / self.batch_size)


def every_row(sampler: MultipackBatchSampler) -> MultipackBatchSampler:
    """The training sampler that yields every packed row of an epoch, built from Axolotl's."""
    if not isinstance(sampler.sampler, RandomSampler):
        # A fixed order (curriculum_sampling) packs the same way every epoch: keep Axolotl's packing,
        # without dropping the last group or cutting the epoch short.
        sampler.drop_last = False
        sampler._batches = None
        sampler._len_across_ranks = len(sampler.generate_batches(set_stats=False))
        return sampler
    return EveryRowSampler(sampler.sampler, batch_size=sampler.batch_size, batch_max_len=sampler.batch_max_len,
                           lengths=sampler.lengths, bin_size=sampler.bin_size, drop_last=False)


class FrozenImports(BasePlugin):
    """Takes the objects alive when training starts out of the garbage collector's passes (`gc.freeze`).

    By then a training process has imported torch, transformers, DeepSpeed and Axolotl: some 670,000 objects that
    live as long as the process, which every full `gc.collect()` walks again (0.35 s each on one AVX-512 core).
    Axolotl 0.19 collects at each of its packing sampler's length estimates and more, 16 times before the first
    step of a one-step run. Frozen, those passes only walk what training made since. They are unfrozen at exit,
    so the interpreter's last collection sees everything, as without this plugin. `bench/bench_startup.py`
    measures it.

    Frozen from `load_datasets`, the first hook Axolotl calls only in a training process (returning None, it
    leaves the loading to Axolotl): `register` also runs where medtune checks a rendered config (the launching
    process, the tests), whose later garbage must stay collectable.
    """

    _frozen = False

    def load_datasets(self, cfg, preprocess=False):
        if not FrozenImports._frozen:
            FrozenImports._frozen = True
            gc.freeze()
            atexit.register(gc.unfreeze)
        return None


class SeededInit(BasePlugin):
    """Seeds Python, NumPy and torch from the config's `seed` before the model is built.

    Axolotl 0.19 seeds only when it creates the trainer, after the LoRA matrices (and any other newly
    initialised weights) were drawn from an unseeded generator: two runs of one recipe then logged
    losses 0.008 apart by the second step. Seeded here, a recipe and its seed give the same numbers.
    """

    def pre_model_load(self, cfg):
        if cfg.seed is not None:
            from transformers import set_seed

            set_seed(cfg.seed)


class EveryRowPacking(BasePlugin):
    """Axolotl plugin (listed under `plugins:` by medtune's templates); see the module docstring."""

    def post_trainer_create(self, cfg, trainer):
        if not cfg.sample_packing or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return
        axolotl_sampler = trainer._get_train_sampler

        def train_sampler(*args, **kwargs):
            sampler = axolotl_sampler(*args, **kwargs)
            return every_row(sampler) if isinstance(sampler, MultipackBatchSampler) else sampler

        trainer._get_train_sampler = train_sampler
        if not cfg.max_steps:
            # Axolotl set max_steps from its floor estimate; -1 lets the trainer count the sampler's steps.
            trainer.args.max_steps = -1
