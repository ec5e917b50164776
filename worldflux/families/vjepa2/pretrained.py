"""Reading a pretrained vjepa2 encoder out of a saved worldflux checkpoint (no pickle).

V-JEPA 2-AC post-trains its predictor on top of a frozen, pretrained V-JEPA 2 encoder. Here the
pretrained encoder comes from a checkpoint of a vjepa2 model (``model.save_pretrained(dir)`` or a
training checkpoint): the files are read and verified by :mod:`worldflux.core.checkpoint` (manifest
sizes and SHA-256, safetensors, header checked against the expected names, shapes and dtypes
before any tensor is built). The weights taken are those of the stored EMA *target* encoder
(``observation_encoder.target.*``), the encoder V-JEPA 2 releases and evaluates.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from worldflux.core.checkpoint import (
    WEIGHTS,
    exact_header_check,
    model_unit,
    read_model_documents,
)
from worldflux.core.exceptions import CheckpointError

__all__ = ["SOURCE_PREFIX", "load_encoder_weights"]

#: The stored tensors copied into the encoder: the source model's EMA target encoder.
SOURCE_PREFIX = "observation_encoder.target."


def load_encoder_weights(module: nn.Module, directory: str | Path) -> None:
    """Fill ``module`` (a ``PatchViT``) with the target-encoder weights stored in ``directory``.

    Raises:
        CheckpointError: not a verified worldflux checkpoint, not a vjepa2 model, or an encoder
            whose tensor names, shapes or dtypes differ from ``module``'s (another embed_dim,
            patch_size, depth...).
    """
    unit = model_unit(directory)
    config_doc, _ = read_model_documents(unit)
    if config_doc.get("model_type") != "vjepa2":
        raise CheckpointError(
            f"{unit.root}: holds a {config_doc.get('model_type')!r} model, not a vjepa2 model "
            "(the pretrained encoder must come from a vjepa2 checkpoint)"
        )
    weights = unit.tensor_file(WEIGHTS)
    infos = {
        key.removeprefix(SOURCE_PREFIX): info
        for key, info in weights.infos.items()
        if key.startswith(SOURCE_PREFIX)
    }
    expected = module.state_dict()
    exact_header_check(expected, "the vjepa2 encoder")(infos, weights.path)
    tensors = weights.load()
    state = {name: tensors[SOURCE_PREFIX + name] for name in expected}
    with torch.no_grad():
        module.load_state_dict(state, strict=True)
