"""Benchmark: SASRec training throughput (forward + backward), each variant.

Batches follow the real data's length distribution (each user's most recent <= 20 items, plus
BOS; read from ../shared/data when present, else drawn with the same mean and maximum) over the
real catalog size. Reports real (non-pad) tokens per second and, in the same run, ratios:
- "logits only at real positions" (the fused chunked loss) vs "logits everywhere"
  (full ``(batch, seq, vocab)`` logits, then cross-entropy),
- the fused output layer in bf16 vs float32 (bf16 is the default on CPUs with AMX),
- the output layer alone: ours vs PyTorch's chunked ``F.linear_cross_entropy``, and
- PyTorch SDPA vs a plain eager attention.
The GPU path (original size, bf16, kernels, MFU) is bench/gpu_check.py.

The tables are kept in bench/results/model_throughput.json with the command, commit, machine and
date (``--cache`` writes them elsewhere), which docs/results.md prints.

    .venv/bin/python -m bench.model_throughput [--steps N] [--cache PATH]
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
import time
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

import recsys_pipeline  # noqa: F401  (registers the model family)
from recsys_pipeline.models.configuration_sasrec import VARIANTS, SASRecConfig
from recsys_pipeline.models.fused_loss import linear_cross_entropy
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result
from recsys_pipeline.settings import PROFILES
from recsys_pipeline.settings import SHARED_SEQUENCES as SHARED_CSV

N_ITEMS = 16_859  # the real catalog's size, for a realistic output layer
MAX_LENGTH = 20
CACHE = REPO / "bench" / "results" / "model_throughput.json"
REFERENCE = "F.linear_cross_entropy, chunks of 128, float32"  # the output layer's reference


class OutputLayer(TypedDict):
    positions: int
    items: int
    rates: dict[str, float]  # positions/s by implementation, REFERENCE among them


class Measurement(TypedDict):
    """What one run measured: tokens/s of each variant (``bf16``, ``float32``: the fused loss with
    that output layer; ``everywhere``: full logits), the output layer alone, and ``sasrec_rope``'s
    tokens/s by attention kernel (``sdpa``, ``eager``)."""

    batch_size: int
    timed_steps: int
    threads: int
    real_lengths: bool  # False: lengths drawn (no shared data)
    torch: str
    variants: dict[str, dict[str, float]]
    output_layer: OutputLayer
    attention: dict[str, float]


def real_lengths() -> np.ndarray:
    if SHARED_CSV.is_file():
        with SHARED_CSV.open(newline="") as handle:
            rows = csv.DictReader(handle)
            lengths = [len(ast.literal_eval(r["history_item_id"])) for r in rows]
        return np.minimum(np.array(lengths), MAX_LENGTH)
    print(f"(no {SHARED_CSV}: lengths drawn with mean 8.7, max 20)")
    rng = np.random.default_rng(0)
    return np.clip(rng.geometric(1 / 4.2, 50_000) + 4, 5, MAX_LENGTH)


def batches(lengths: np.ndarray, batch_size: int, steps: int, device: str) -> list[dict]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        chosen = rng.choice(lengths, batch_size) + 1  # + BOS
        width = int(chosen.max())
        ids = torch.zeros(batch_size, width, dtype=torch.long)
        for row, n in enumerate(chosen):
            ids[row, :n] = torch.from_numpy(rng.integers(1, N_ITEMS + 1, n))
        mask = (ids != 0).long()
        labels = ids.masked_fill(mask == 0, -100)
        out.append(
            {
                k: v.to(device)
                for k, v in dict(input_ids=ids, attention_mask=mask, labels=labels).items()
            }
        )
    return out


def tokens_per_second(
    model: SASRecForCausalLM,
    data: list[dict],
    lean: bool,
    autocast: bool,
    loss_dtype: torch.dtype | None = None,
) -> float:
    device = next(model.parameters()).device.type
    model.train()

    def step(batch: dict) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            out = model(**batch, return_logits=not lean, loss_dtype=loss_dtype)
        out.loss.backward()
        model.zero_grad(set_to_none=True)

    step(data[0])  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in data[1:]:
        step(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    real = sum(int(b["attention_mask"].sum()) for b in data[1:])
    return real / (time.perf_counter() - started)


def model_size(settings: object) -> dict:
    names = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "head_dim",
        "intermediate_size",
    )
    size = {name: getattr(settings, name) for name in names}
    size["head_dim"] = size["head_dim"] or settings.hidden_size // settings.num_attention_heads
    return size


def build(size: dict, variant: str, device: str, attn: str = "sdpa") -> SASRecForCausalLM:
    torch.manual_seed(0)
    config = SASRecConfig(
        variant=variant,
        vocab_size=N_ITEMS + 4,
        max_position_embeddings=MAX_LENGTH + 1,
        hidden_dropout=0.0,
        **size,
    )
    config._attn_implementation = attn
    return SASRecForCausalLM(config).to(device)


def cpu_report(steps: int) -> Measurement:
    size = model_size(PROFILES["cpu"].sft)
    data = batches(real_lengths(), 256, steps, "cpu")
    variants = {}
    print(
        f"CPU profile size {size}, batch 256, {steps - 1} timed steps, {torch.get_num_threads()} threads"
    )
    print(
        "| variant | fused, bf16 output layer | fused, float32 | logits everywhere | "
        "bf16 / float32 | float32 fused / everywhere |"
    )
    print("|---|---|---|---|---|---|")
    for variant in VARIANTS:
        model = build(size, variant, "cpu")
        bf16 = tokens_per_second(model, data, True, False, torch.bfloat16)
        lean = tokens_per_second(model, data, True, False, torch.float32)
        full = tokens_per_second(model, data, lean=False, autocast=False)
        variants[variant] = {"bf16": bf16, "float32": lean, "everywhere": full}
        print(
            f"| {variant} | {bf16:,.0f} | {lean:,.0f} | {full:,.0f} | {bf16 / lean:.2f}x | "
            f"{lean / full:.2f}x |"
        )
    output_layer = output_layer_report(size["hidden_size"])
    sdpa = tokens_per_second(build(size, "sasrec_rope", "cpu", "sdpa"), data, True, False)
    eager = tokens_per_second(build(size, "sasrec_rope", "cpu", "eager"), data, True, False)
    print(
        f"\nsasrec_rope attention: SDPA {sdpa:,.0f} tokens/s, eager {eager:,.0f} tokens/s, ratio {sdpa / eager:.2f}x"
    )
    return {
        "batch_size": 256,
        "timed_steps": steps - 1,
        "threads": torch.get_num_threads(),
        "real_lengths": SHARED_CSV.is_file(),
        "torch": torch.__version__.split("+")[0],
        "variants": variants,
        "output_layer": output_layer,
        "attention": {"sdpa": sdpa, "eager": eager},
    }


def output_layer_report(hidden_size: int, rows: int = 2304, repeats: int = 5) -> OutputLayer:
    """The output layer's loss and gradients alone: ours vs PyTorch's chunked op (which cannot
    add the seen-item bias, so neither does ours here)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    hidden = torch.randn(rows, hidden_size, requires_grad=True)
    weight = (torch.randn(N_ITEMS + 4, hidden_size) * 0.1).requires_grad_()
    targets = torch.randint(0, N_ITEMS + 4, (rows,))
    chunked = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=128, chunking_method=None)
    runs = {
        "ours, bf16": lambda: linear_cross_entropy(
            hidden, weight, targets, compute_dtype=torch.bfloat16
        ),
        "ours, float32": lambda: linear_cross_entropy(hidden, weight, targets),
        REFERENCE: lambda: F.linear_cross_entropy(hidden, weight, targets, options=chunked),
        "F.linear_cross_entropy, unchunked, float32": lambda: F.linear_cross_entropy(
            hidden, weight, targets
        ),
    }
    rates = {}
    for name, loss in runs.items():
        loss().backward()  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            loss().backward()
        rates[name] = rows * repeats / (time.perf_counter() - started)
    reference = rates[REFERENCE]
    print(f"\noutput layer alone ({rows:,} positions x {N_ITEMS + 4:,} items, loss + gradients):")
    print("| implementation | positions/s | vs F.linear_cross_entropy (chunks of 128) |")
    print("|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / reference:.2f}x |")
    return {"positions": rows, "items": N_ITEMS + 4, "rates": rates}


def cache_rows(measured: Measurement) -> dict[str, list[dict[str, str]]]:
    """The cached tables (docs/results.md prints them): the printed figures, by caption."""
    layer = measured["output_layer"]
    lengths = (
        "the real length distribution"
        if measured["real_lengths"]
        else "lengths drawn with mean 8.7, max 20 (no shared data)"
    )
    training = (
        f"training throughput, tokens/s (forward + backward, CPU profile size, batch "
        f"{measured['batch_size']}, {measured['timed_steps']} timed steps, "
        f"{measured['threads']} threads, {lengths}, over the {layer['items']:,}-token catalog)"
    )
    pytorch = f"PyTorch {measured['torch']} `F.linear_cross_entropy`"
    reference = layer["rates"][REFERENCE]
    return {
        training: [
            {
                "variant": f"`{variant}`",
                "fused loss, bf16 output layer (the default here)": f"{rate['bf16']:,.0f}",
                "fused loss, float32": f"{rate['float32']:,.0f}",
                "logits everywhere": f"{rate['everywhere']:,.0f}",
                "bf16 / float32": f"{rate['bf16'] / rate['float32']:.2f}×",
                "float32 fused / everywhere": f"{rate['float32'] / rate['everywhere']:.2f}×",
            }
            for variant, rate in measured["variants"].items()
        ],
        f"the output layer alone ({layer['positions']:,} positions × {layer['items']:,} items, "
        "loss and gradients)": [
            {
                "implementation": name.replace("F.linear_cross_entropy", pytorch),
                "positions/s": f"{rate:,.0f}",
                "vs `F.linear_cross_entropy` in chunks of 128": f"{rate / reference:.2f}×",
            }
            for name, rate in layer["rates"].items()
        ],
        "attention kernels (`sasrec_rope`, fused loss, tokens/s)": [
            {"attention": "PyTorch SDPA", "tokens/s": f"{measured['attention']['sdpa']:,.0f}"},
            {"attention": "eager", "tokens/s": f"{measured['attention']['eager']:,.0f}"},
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the tables are kept")
    args = parser.parse_args(argv)
    measured = cpu_report(args.steps)
    arguments = sys.argv[1:] if argv is None else argv
    command = command_line("bench.model_throughput", arguments)
    save_result(args.cache, command, cache_rows(measured))


if __name__ == "__main__":
    main()
