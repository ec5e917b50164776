"""The suite as pytest tests: ``pytest conformance/ --wf-target=ID [--wf-target=...]``.

Without ``--wf-target`` every registered model is checked. One test per (target, check); ids are
``<target>::<check_id>`` (select with ``-k``). Options: ``--wf-level``, ``--wf-profile``,
``--wf-seed``, ``--wf-checks``, ``--wf-spec``, ``--wf-max-examples``.
"""

from __future__ import annotations

from typing import Any


def test_conformance(wf_case: Any) -> None:
    wf_case.run()
