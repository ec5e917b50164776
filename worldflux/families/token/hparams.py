"""IRIS-style token world-model hyperparameters read from the model config, with ``base`` defaults.

Defaults follow IRIS where it fits a vector-observation CPU model: 16 tokens per frame, 512-way
vocabulary, transformer of 10 layers, 4 heads, embed 256, 20 frames of context.
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext

__all__ = ["DEFAULTS", "hp"]

DEFAULTS: dict[str, Any] = {
    "num_tokens": 16,
    "vocab_size": 512,
    "code_dim": 64,
    "tokenizer_hidden": 256,
    "tokenizer_layers": 2,
    "embed_dim": 256,
    "num_layers": 10,
    "num_heads": 4,
    "context_frames": 20,
    "head_hidden": 256,
    "head_layers": 1,
}


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, or its default."""
    value = ctx.hparam(name, None)
    return DEFAULTS[name] if value is None else value
