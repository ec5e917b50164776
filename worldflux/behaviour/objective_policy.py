"""``objective_policy``: the model acts with its objective's own policy (DreamerV3's actor).

The actor and critic of DreamerV3 are trained inside its official loss (parity with the official
code fixes where they live); this behaviour declares that and forwards ``act`` to the objective's
``act(model, obs, carry, *, is_first, eval_mode)`` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from worldflux.core.components import Behaviour, BuildContext
from worldflux.core.exceptions import CapabilityError
from worldflux.core.registry import register_component

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["ObjectivePolicy"]


@register_component("behaviour", "objective_policy")
class ObjectivePolicy(Behaviour):
    """Acts through ``model.objective.act``; trained by the objective (no loss of its own)."""

    def __init__(self, ctx: BuildContext, params: None = None) -> None:
        super().__init__()

    def check_model(self, model: WorldModel) -> None:
        if not callable(getattr(getattr(model, "objective", None), "act", None)):
            raise CapabilityError("objective_policy: the model's objective has no act() hook")

    def act(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
        goal: Tensor | dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Any]:
        act: Any = getattr(getattr(model, "objective", None), "act", None)
        if not callable(act):
            raise CapabilityError("objective_policy: the model's objective has no act() hook")
        result: tuple[Tensor, Any] = act(model, obs, carry, is_first=is_first, eval_mode=eval_mode)
        return result
