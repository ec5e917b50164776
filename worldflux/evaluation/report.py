"""``eval.json`` (format ``worldflux-eval`` v1), the error-vs-horizon plot and, for image
observations, an open-loop GIF (ground truth | prediction | difference)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.evaluation.metrics import EvalResult

__all__ = ["FORMAT", "write_report"]

FORMAT = "worldflux-eval"
CURVES = (
    "obs_mse",
    "probe_obs_mse",
    "mlp_probe_obs_mse",
    "copy_last_mse",
    "mean_mse",
    "reward_mse",
    "latent_mse",
)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def write_report(result: EvalResult, out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``out/eval.json`` (+ ``error_vs_horizon.png``, + ``openloop.gif`` for images)."""
    out.mkdir(parents=True, exist_ok=True)
    fields = asdict(result)
    fields.pop("example", None)
    document: dict[str, Any] = _clean({"format": FORMAT, "version": 1, **meta, **fields})
    temp = out / f".eval.json.{os.getpid()}.tmp"
    temp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    os.replace(temp, out / "eval.json")
    document["pictures"] = _pictures(result, out)
    return document


def _pictures(result: EvalResult, out: Path) -> list[str]:
    try:
        # deferred: optional dependency (extra "train"); eval.json is written without it
        import matplotlib

        matplotlib.use("Agg")
        # deferred: pyplot must load after matplotlib.use("Agg") (no display needed)
        import matplotlib.pyplot as plt
    except ImportError:  # the plot needs the [train] extra; eval.json does not
        return []
    written = []
    steps = list(range(1, result.horizon + 1))
    figure, axis = plt.subplots(figsize=(6, 4))
    for name in CURVES:
        values = getattr(result, name)
        if values is not None:
            axis.plot(steps, values, marker="o", label=name.removesuffix("_mse"))
    axis.set_xlabel("open-loop step h")
    axis.set_ylabel("mean squared error")
    axis.set_yscale("log")
    axis.set_title(f"prediction error vs horizon ({result.windows} held-out windows)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "error_vs_horizon.png", dpi=100)
    plt.close(figure)
    written.append("error_vs_horizon.png")
    example = result.example
    if example and example["truth"].dim() == 4:  # [H, C, height, width] frames
        written.append(_gif(example["truth"], example["prediction"], out / "openloop.gif"))
    return written


def _gif(truth: Any, prediction: Any, path: Path) -> str:
    # deferred: optional dependency (Pillow comes with matplotlib, extra "train")
    from PIL import Image

    frames = []
    for t, p in zip(truth, prediction, strict=True):
        t, p = t.clamp(0, 1), p.clamp(0, 1)
        row = np.concatenate([t.numpy(), p.numpy(), (t - p).abs().numpy()], axis=-1)
        image = (row.transpose(1, 2, 0) * 255).astype(np.uint8)
        frames.append(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=300, loop=0)
    return path.name
