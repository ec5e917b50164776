"""Parity for external implementations (targets not in the registry).

An external target declares its parity facts in its ``--spec`` file (or a ``parity`` dict
attribute):

.. code-block:: yaml

    parity:
      param_counts: {counts: {default: 1234}}        # trainable parameters of the built model
      goldens:
        - file: goldens/plain.safetensors            # relative to the spec file
          outputs: mypkg.parity:outputs              # fn(model, inputs) -> {name: Tensor}
          atol: 1e-6
          rtol: 1e-5

The golden file holds input tensors (every key the function reads) and expected outputs (every
key it returns) with the same names; each output is compared element-wise with
``worldflux.parity.compare``. An external target that declares no parity facts gets ``n/a``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from worldflux.conformance.context import CheckContext, CheckFailed, CheckSkipped, seeded
from worldflux.conformance.target import import_attr

from worldflux.parity import compare, read_golden

__all__ = ["external_goldens", "external_param_counts", "external_parity_facts"]


def external_parity_facts(ctx: CheckContext) -> dict[str, Any]:
    """The external target's parity facts, or CheckSkipped (n/a) when it declares none."""
    parity = ctx.spec.get("parity")
    if parity is None and ctx.has_model:
        parity = getattr(ctx.model(), "parity", None)
    if not isinstance(parity, dict) or not parity:
        raise CheckSkipped("n/a: the external target declares no parity facts")
    return parity


def external_param_counts(ctx: CheckContext) -> None:
    """``param_counts.counts.default``: the trainable parameter count of the built model."""
    facts = external_parity_facts(ctx).get("param_counts")
    if not isinstance(facts, dict) or "default" not in (facts.get("counts") or {}):
        raise CheckSkipped("n/a: no param_counts.counts.default declared")
    want = int(facts["counts"]["default"])
    model = ctx.model()
    found = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if found != want:
        raise CheckFailed(f"expected {want:,} trainable parameters, found {found:,}")


def _resolve(ctx: CheckContext, rel: str) -> Path:
    path = Path(rel)
    if path.is_absolute():
        return path
    if ctx.target.spec_file:
        return Path(ctx.target.spec_file).resolve().parent / rel
    return path.resolve()


def external_goldens(ctx: CheckContext) -> None:
    """Every declared golden: ``outputs(model, inputs)`` reproduces the stored outputs."""
    goldens = external_parity_facts(ctx).get("goldens")
    if not goldens:
        raise CheckSkipped("n/a: no goldens declared")
    problems: list[str] = []
    for entry in goldens:
        rel = str(entry.get("file", ""))
        path = _resolve(ctx, rel)
        if not path.is_file():
            problems.append(f"golden file {rel!r} not found (resolved to {path})")
            continue
        fn = entry.get("outputs")
        try:
            fn = import_attr(fn) if isinstance(fn, str) else fn
        except Exception as error:
            problems.append(f"{rel}: outputs function {entry.get('outputs')!r}: {error}")
            continue
        if not callable(fn):
            problems.append(f"{rel}: `outputs` must name a function fn(model, inputs)")
            continue
        tensors, _ = read_golden(path)
        model = ctx.model()
        if hasattr(model, "train"):
            model.train(False)
        seeded(ctx.options.seed)
        with torch.no_grad():
            outputs = ctx.call(f"{entry.get('outputs')}(model, inputs)", fn, model, tensors)
        if not outputs:
            problems.append(f"{rel}: the outputs function returned nothing to compare")
        atol, rtol = float(entry.get("atol", 1e-6)), float(entry.get("rtol", 1e-5))
        for name, value in dict(outputs or {}).items():
            if name not in tensors:
                problems.append(f"{rel}: output {name!r} is not in the golden file")
                continue
            row = compare(name, value.detach(), tensors[name], atol=atol, rtol=rtol)
            if not row.passed:
                problems.append(
                    f"{rel}: {name} max_abs {row.max_abs:.3g} (atol {atol:g}), "
                    f"max_rel {row.max_rel:.3g} (rtol {rtol:g})"
                )
    if problems:
        raise CheckFailed("; ".join(problems))
