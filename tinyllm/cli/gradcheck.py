"""``tinyllm gradcheck``: check every op's and module's gradient against finite differences."""
from __future__ import annotations

import click

EPILOG = """\b
Examples:
  tinyllm gradcheck                          # every op in the registry and the nn modules
  tinyllm gradcheck MatMul Softmax nn.TransformerBlock
  tinyllm gradcheck --dtype float32          # also compare the float32 backward with float64
  tinyllm gradcheck --list
\b
Each case draws small inputs away from kinks, computes dL/dx by autograd and by
central differences (L = sum(v * f(x)) for a random v), and compares them. The
exit status is 1 if any case fails."""


@click.command("gradcheck", epilog=EPILOG, short_help="Check gradients against finite differences.")
@click.argument("names", nargs=-1)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="float64: autograd vs finite differences; float32: also the float32 backward vs float64.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the inputs and directions.")
@click.option("--list", "list_only", is_flag=True, help="List the case names and exit.")
def gradcheck_command(names: tuple[str, ...], dtype: str, seed: int, list_only: bool) -> None:
    """Run finite-difference gradient checks of the chosen ops and modules (all by default)."""
    from ..gradcheck_cases import all_cases, registered_ops, run_case, select  # noqa: PLC0415

    if list_only:
        for name, case in all_cases().items():
            click.echo(f"{name:30} {', '.join(case.ops)}")
        return
    cases = select(list(names))
    missing = [] if names else [op for op in registered_ops() if op not in all_cases()]
    name_w = max(len("op"), *(len(c.name) for c in cases))
    header = f"{'op':<{name_w}}  {'shapes':<28}  {'max abs err':>11}  {'max rel err':>11}  result"
    click.echo(header)
    click.echo("-" * len(header))
    failed = 0
    for case in cases:
        r = run_case(case, seed=seed, dtype=dtype)
        failed += not r.passed
        shapes = r.shapes if len(r.shapes) <= 28 else r.shapes[:25] + "..."
        click.echo(f"{r.name:<{name_w}}  {shapes:<28}  {r.max_abs_err:>11.2e}  {r.max_rel_err:>11.2e}  "
                   f"{'pass' if r.passed else 'FAIL'}" + (f"  ({r.detail})" if not r.passed else ""))
    for op in missing:
        failed += 1
        click.echo(f"{op:<{name_w}}  {'-':<28}  {'-':>11}  {'-':>11}  FAIL  (no gradient check case for this op)")
    total = len(cases) + len(missing)
    click.echo(f"\n{total - failed}/{total} passed ({dtype})")
    if failed:
        click.get_current_context().exit(1)
