"""Layers: dammem's ``Hopfield`` vs PyTorch ``torch.nn.MultiheadAttention``, forward + backward on the CPU.

Run from the repository root: ``python benchmarks/layers.py [--quick] [--out FILE]`` (JSON to
``runs/bench_layers.json`` by default). The PyTorch side needs ``torch`` (the ``bench`` extra).

Shape legend: ``B`` batch, ``L`` sequence length, ``F`` width (features), ``H`` heads; the default case is the
self-attention of a transformer block, ``B = 32``, ``L = 256``, ``F = 256``, ``H = 8``, float32.

What is timed, per call: the loss ``sum(layer(x))`` of one batch ``x`` of shape ``(B, L, F)`` and its gradient in
every parameter of the layer (query, key, value and output projections with biases).

* dammem: ``Hopfield(H, F, separation=...)`` split into graph and parameters (``nnx.split``) and
  ``jax.jit(jax.value_and_grad(loss))`` over the parameters, compiled ahead of time (compile time reported apart);
  softmax, sparsemax and 1.5-entmax (the sparse ones have no PyTorch peer here), and softmax with grouped-query
  attention, ``num_kv_heads=K`` (``--kv-heads``, default ``H / 4``: K key/value heads shared by groups of
  ``H / K`` query heads; ``torch.nn.MultiheadAttention`` has no grouped form, so its ratio compares unlike layers).
* PyTorch: ``nn.MultiheadAttention(F, H, batch_first=True)`` called with ``need_weights=False``, then
  ``torch.autograd.grad`` of the same loss in all its parameters, with ``torch.set_num_threads(os.cpu_count())``.

Before timing, the PyTorch layer's weights are copied into the softmax ``Hopfield`` and the loss, the outputs and
every parameter gradient are compared (recorded as ``check``: outputs must agree to 1e-4 and gradients to 1e-4 of
the largest gradient entry; the key bias's gradient is zero in exact arithmetic, softmax being
shift-invariant). Timing (see
``_harness``): JAX and PyTorch are two phases that take turns in ``--rounds`` rounds with a pause before each (never
interleaved call by call: PyTorch's OpenMP workers keep spinning after a call and slow the JAX call that follows);
within a phase the methods interleave call by call. The table gives the median and minimum in milliseconds and the
ratio ``torch median / method median`` (>= 1: the method is not slower than PyTorch; the target for the softmax
``Hopfield``).
"""

from __future__ import annotations

import argparse
import sys
import time

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dammem.nn import Hopfield

PEERS = ("torch", "flax")
TORCH = "torch.nn.MultiheadAttention"
SEPARATIONS = ("softmax", "sparsemax", "entmax15")
TARGET = "Hopfield(softmax) >= torch.nn.MultiheadAttention (median ratio >= 1.0)"
CHECK_ATOL = 1e-4


def method_name(separation: str, kv_heads: int | None = None) -> str:
    grouped = "" if kv_heads is None else f", num_kv_heads={kv_heads}"
    return f"dammem.Hopfield({separation}{grouped})"


def make_input(batch: int, length: int, width: int, seed: int) -> np.ndarray:
    """Standard-normal float32 inputs ``(B, L, F)`` from a fixed seed."""
    return np.random.default_rng(seed).standard_normal((batch, length, width), dtype=np.float32)


def hopfield_step(model: Hopfield):
    """``(step, params)``: ``step(params, x) -> (loss, grads)``, the jitted value and gradient of ``sum(model(x))``
    in the model's parameters."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, x):
        return jnp.sum(nnx.merge(graphdef, params, rest)(x))

    return jax.jit(jax.value_and_grad(loss)), params


def prepare_dammem(
    separation: str, x: np.ndarray, heads: int, seed: int, model: Hopfield | None = None, kv_heads: int | None = None
):
    """``(call, compile seconds, (loss, grads))`` for one forward + backward of a ``Hopfield`` layer (``kv_heads``:
    grouped-query attention with that many key/value heads)."""
    width = x.shape[-1]
    if model is None:
        model = Hopfield(heads, width, num_kv_heads=kv_heads, separation=separation, rngs=nnx.Rngs(seed))
    step, params = hopfield_step(model)
    xj = jnp.asarray(x)
    t0 = time.perf_counter()
    compiled = step.lower(params, xj).compile()
    compile_s = time.perf_counter() - t0
    result = jax.block_until_ready(compiled(params, xj))
    return (lambda: compiled(params, xj)), compile_s, result


def prepare_torch(torch, x: np.ndarray, heads: int, seed: int):
    """``(call, module)``: one forward + backward of ``torch.nn.MultiheadAttention`` (loss and parameter grads)."""
    torch.manual_seed(seed)
    width = x.shape[-1]
    module = torch.nn.MultiheadAttention(width, heads, batch_first=True)
    xt = torch.from_numpy(x.copy())
    params = list(module.parameters())

    def call():
        out, _ = module(xt, xt, xt, need_weights=False)
        loss = out.sum()
        return loss, torch.autograd.grad(loss, params)

    call()
    return call, module


def copy_torch_weights(module, heads: int, width: int, model: Hopfield) -> None:
    """Write ``torch.nn.MultiheadAttention``'s weights into ``model`` (``y = x W^T + b`` per projection)."""
    head_dim = width // heads
    w = module.in_proj_weight.detach().numpy()
    b = module.in_proj_bias.detach().numpy()
    for i, proj in enumerate((model.query, model.key, model.value)):
        rows = slice(i * width, (i + 1) * width)
        proj.kernel[...] = jnp.asarray(w[rows].T.reshape(width, heads, head_dim))
        proj.bias[...] = jnp.asarray(b[rows].reshape(heads, head_dim))
    model.out.kernel[...] = jnp.asarray(module.out_proj.weight.detach().numpy().T.reshape(heads, head_dim, width))
    model.out.bias[...] = jnp.asarray(module.out_proj.bias.detach().numpy())


def torch_grads_as_hopfield(module, grads, heads: int, width: int) -> dict[str, np.ndarray]:
    """PyTorch's parameter gradients in the layout of ``Hopfield``'s parameters (``{"query.kernel": ...}``)."""
    head_dim = width // heads
    named = dict(zip([n for n, _ in module.named_parameters()], [g.numpy() for g in grads]))
    out = {}
    for i, proj in enumerate(("query", "key", "value")):
        rows = slice(i * width, (i + 1) * width)
        out[f"{proj}.kernel"] = named["in_proj_weight"][rows].T.reshape(width, heads, head_dim)
        out[f"{proj}.bias"] = named["in_proj_bias"][rows].reshape(heads, head_dim)
    out["out.kernel"] = named["out_proj.weight"].T.reshape(heads, head_dim, width)
    out["out.bias"] = named["out_proj.bias"]
    return out


def check_same(torch, x: np.ndarray, heads: int, seed: int) -> dict:
    """Copy the PyTorch layer's weights into a softmax ``Hopfield``; compare outputs, loss and gradients."""
    width = x.shape[-1]
    call, module = prepare_torch(torch, x, heads, seed)
    model = Hopfield(heads, width, rngs=nnx.Rngs(seed))
    copy_torch_weights(module, heads, width, model)
    with torch.no_grad():
        expected = module(*(torch.from_numpy(x.copy()),) * 3, need_weights=False)[0].numpy()
    out = np.asarray(model(jnp.asarray(x)))
    loss_t, grads_t = call()
    step, params = hopfield_step(model)
    loss_j, grads_j = step(params, jnp.asarray(x))
    theirs = torch_grads_as_hopfield(module, grads_t, heads, width)
    ours = {".".join(str(k) for k in path): np.asarray(v) for path, v in nnx.to_flat_state(grads_j)}
    scale = max(float(np.max(np.abs(g))) for g in theirs.values())  # the key bias's gradient is 0 up to rounding
    grad_rel = {name: float(np.max(np.abs(ours[name] - g))) / scale for name, g in theirs.items()}
    out_diff = float(np.max(np.abs(out - expected)))
    return {
        "max_abs_output_diff": out_diff,
        "loss": [float(loss_j), float(loss_t.detach())],
        "max_rel_grad_diff": max(grad_rel.values()),
        "rel_grad_diff_by_param": grad_rel,
        "atol": CHECK_ATOL,
        "pass": bool(out_diff <= CHECK_ATOL and max(grad_rel.values()) <= CHECK_ATOL),
    }


def run(
    batch: int, length: int, width: int, heads: int, seed: int, *, repeats: int, rounds: int, warmup: int, torch,
    kv_heads: int | None = None,
) -> dict:  # fmt: skip
    """Time every method (and the grouped-query softmax layer with ``kv_heads`` key/value heads unless None);
    returns ``{"results": {method: {...}}, "check": ... or None}``."""
    x = make_input(batch, length, width, seed)
    res: dict[str, dict] = {}
    jax_calls, torch_calls = {}, {}
    rows = [(separation, None) for separation in SEPARATIONS] + ([("softmax", kv_heads)] if kv_heads else [])
    for separation, kv in rows:
        name = method_name(separation, kv)
        jax_calls[name], compile_s, _ = prepare_dammem(separation, x, heads, seed, kv_heads=kv)
        res[name] = {"compile_s": compile_s, "separation": separation, "num_kv_heads": kv or heads}
    check = None
    if torch is not None:
        check = check_same(torch, x, heads, seed)
        torch_calls[TORCH], _ = prepare_torch(torch, x, heads, seed)
        res[TORCH] = {"compile_s": None}
    phases = [jax_calls] + ([torch_calls] if torch_calls else [])
    times = H.time_interleaved(phases, repeats=repeats, warmup=warmup, rounds=rounds, pause_s=0.5)
    for name, seconds in times.items():
        res[name].update(H.summarize(seconds))
    if TORCH in res:
        for r in res.values():
            r["torch_over_method_median"] = res[TORCH]["median_ms"] / r["median_ms"]
            r["torch_over_method_min"] = res[TORCH]["min_ms"] / r["min_ms"]
    return {"results": res, "check": check}


def _table(record: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the results table: median and min ms, compile seconds, PyTorch's time over each
    layer's (median, min)."""
    rows = []
    for name, r in record["results"].items():
        ratio = "-"
        if "torch_over_method_median" in r and name != TORCH:
            ratio = f"{r['torch_over_method_median']:.2f}x / {r['torch_over_method_min']:.2f}x"
        compile_s = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
        rows.append([f"`{name}`", f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}", compile_s, ratio])
    return ["layer", "median ms", "min ms", "compile s", "torch / layer (median / min)"], rows


def print_table(record: dict) -> None:
    H.print_table(*_table(record))


def readme_table(record: dict) -> str:
    """The README's account of one run (its JSON ``record``): the setting, the check and the table of times."""
    c, check = record["config"], record["check"]
    text = (
        f"Forward + backward, batch {c['batch']}, sequence {c['length']}, width {c['width']}, {c['heads']} heads, "
        f"{c['dtype']}, {c['repeats']} calls per method in {c['rounds']} rounds"
    )
    if check is not None:
        text += (
            f"; with PyTorch's weights copied in, outputs agree to {check['max_abs_output_diff']:.1e} and gradients "
            f"to {check['max_rel_grad_diff']:.1e} of the largest"
        )
    return f"{text}:\n\n{H.markdown_table(*_table(record))}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, the check and the target, write the JSON; returns 0."""
    parser = argparse.ArgumentParser(prog="python benchmarks/layers.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_layers.json", help="JSON output path")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=256, help="sequence length L")
    parser.add_argument("--width", type=int, default=256, help="features F (divisible by --heads)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument(
        "--kv-heads",
        type=int,
        default=None,
        help="key/value heads of the grouped-query row (divides --heads; default heads / 4, 0: no row)",
    )
    parser.add_argument("--repeats", type=int, default=H.MIN_REPEATS * 2, help="timed calls per method (>= 15)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the JAX and PyTorch phases")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per method at the start of each turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: B=2, L=8, F=16, H=2, 2 calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.length, args.width, args.heads = 2, 8, 16, 2
        args.repeats, args.rounds, args.warmup = 2, 1, 1
    if args.width % args.heads:
        parser.error(f"--width {args.width} must be divisible by --heads {args.heads}")
    if args.kv_heads is None:
        args.kv_heads = max(args.heads // 4, 1)
    if args.kv_heads < 0 or (args.kv_heads and args.heads % args.kv_heads):
        parser.error(f"--kv-heads {args.kv_heads} must divide --heads {args.heads} (or be 0: no grouped-query row)")
    if not 1 <= args.rounds <= args.repeats or args.warmup < 0:
        parser.error("need 1 <= --rounds <= --repeats and --warmup >= 0")

    torch = H.load_torch()
    env = H.environment(PEERS)
    device = jax.devices()[0]
    print(
        f"dammem layers benchmark: B={args.batch}, L={args.length}, F={args.width}, H={args.heads}, float32,"
        f" forward + backward, {args.repeats} calls per method"
    )
    print(f"machine: {H.describe(env)}; JAX device: {device}")
    if args.kv_heads:
        print(
            f"grouped-query row: num_kv_heads={args.kv_heads} (key/value heads shared by groups of"
            f" {args.heads // args.kv_heads} query heads; torch.nn.MultiheadAttention has no grouped form)"
        )
    if torch is None:
        print("note: torch not importable (pip install -e '.[bench]'); timing dammem only")
    measured = run(
        args.batch, args.length, args.width, args.heads, args.seed,
        repeats=args.repeats, rounds=args.rounds, warmup=args.warmup, torch=torch, kv_heads=args.kv_heads or None,
    )  # fmt: skip
    print()
    print_table(measured)
    check = measured["check"]
    target = None
    if check is not None:
        status = "PASS" if check["pass"] else "FAIL"
        print(
            f"\ncheck (PyTorch weights copied into Hopfield(softmax)): max |output diff| "
            f"{check['max_abs_output_diff']:.1e}, max |gradient diff| / max |gradient| {check['max_rel_grad_diff']:.1e}"
            f" (atol {CHECK_ATOL:g})  {status}"
        )
        value = measured["results"][method_name("softmax")]["torch_over_method_median"]
        target = {"target": TARGET, "value": value, "threshold": 1.0, "pass": bool(value >= 1.0)}
        print(f"target: {TARGET}: {value:.2f}  {'PASS' if target['pass'] else 'FAIL'}")
    record = {
        "benchmark": "layers",
        "config": {
            "batch": args.batch, "length": args.length, "width": args.width, "heads": args.heads,
            "kv_heads": args.kv_heads,
            "repeats": args.repeats, "rounds": args.rounds, "warmup": args.warmup, "seed": args.seed,
            "dtype": "float32", "jax_device": str(device), "quick": args.quick,
            "timing": "JAX and PyTorch in separate phases taking turns (0.5 s pause before each); "
                      "methods interleaved call by call within a phase",
        },
        "environment": env,
        "peers": torch is not None,
        **measured,
        "target": target,
    }  # fmt: skip
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
