"""``worldflux parity check MODEL --golden FILE``: our model against official golden tensors."""

from __future__ import annotations

import argparse

from worldflux.parity import check_golden


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="parity_command", required=True)
    check = sub.add_parser("check", help="recompute a golden file's outputs and compare")
    check.add_argument("model", help="model id, e.g. tdmpc2:5m or dreamerv3:size1m")
    check.add_argument("--golden", required=True, help="golden .safetensors file")


def run(args: argparse.Namespace) -> int:
    rows = check_golden(args.model, args.golden)
    width = max([len(r.name) for r in rows] + [6])
    print(
        f"{'output':<{width}}  {'worst':>8}  {'at index':<14}  {'max abs':>9}  {'max rel':>9}  "
        f"{'atol':>7}  {'rtol':>7}  result"
    )
    for row in rows:
        status = "ok" if row.passed else "FAIL"
        note = f"  ({row.note})" if row.note else ""
        where = "[" + ",".join(str(i) for i in row.worst_index) + "]"
        print(
            f"{row.name:<{width}}  {row.worst_ratio:>8.3g}  {where:<14}  {row.max_abs:>9.3g}  "
            f"{row.max_rel:>9.3g}  {row.atol:>7.1g}  {row.rtol:>7.1g}  {status}{note}"
        )
    failed = [r.name for r in rows if not r.passed]
    print(
        f"{len(rows) - len(failed)}/{len(rows)} outputs within tolerance "
        "(element-wise |d| <= atol + rtol*|golden|; worst = max |d| / that allowance)"
    )
    return 1 if failed or not rows else 0
