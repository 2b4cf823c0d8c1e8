"""Axolotl plugin for full-weight training in bf16/fp16: fp32 master weights, half-precision compute.

Axolotl 0.19 loads the model in the training precision (`bf16: true` sets its torch_dtype to bfloat16, and
no config key loads the weights otherwise), and the trainer's AdamW keeps its moments in the weights' dtype.
A full fine-tune would then train in pure bf16, where an update smaller than 1/256 of a weight rounds away:
at a learning rate of 1e-5 most of them do. The rendered config lists this plugin for full and GaLore
training without DeepSpeed (`Recipe.fp32_master_weights`; DeepSpeed's optimizer keeps fp32 master weights
and moments itself). It upcasts the loaded model to fp32 before the trainer is built, so weights, gradients
and AdamW moments are fp32 while the forward and backward passes still run in bf16 under the trainer's
autocast (`bf16: true`): the usual mixed precision. Checkpoints keep the fp32 weights, so a resumed run
continues exactly; after training the weights go back to the loading dtype, so train/ holds them in the
base model's precision and evaluation compares base and tuned model in the same dtype.
"""
from __future__ import annotations

import torch
from axolotl.integrations.base import BasePlugin


class Fp32MasterWeights(BasePlugin):
    """Axolotl plugin (listed under `plugins:` by medtune's templates); see the module docstring."""

    def post_model_load(self, cfg, model):
        # After Axolotl's own dtype passes (it casts norms and embeddings to torch_dtype for flash attention),
        # before the trainer and its optimizer exist.
        model.to(torch.float32)

    def post_train(self, cfg, model):
        # Axolotl calls this after trainer.train() and before it saves the final weights (and once more after).
        if cfg.torch_dtype in (torch.bfloat16, torch.float16):
            model.to(cfg.torch_dtype)
