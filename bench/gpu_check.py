"""The GPU path in one script (an H200, one chip): run it there, read the one table it prints.

  1. the model family at the original size (hidden 1024, 5 layers, 8 heads x 64, inner 4096),
     each variant, bf16 autocast, forward + backward on batches with the real length
     distribution: tokens/s, model FLOPs utilisation against the H200's dense bf16 peak, peak memory;
  2. attention kernels on equal-length batches (no padding mask, so every kernel may run): SDPA
     with the flash backend forced, SDPA with the math backend forced, flash-attn 2 (where its
     wheel is installed);
  3. one full SFT epoch of the real training code (``recsys_pipeline.training.sft.run_request``,
     the function the sft_checkpoint asset runs, on the sequences and tokenizer artifacts that the
     pipeline's raw_csv, sequences and tokenizer assets build, materialized in-process) on the
     shared data at the GPU profile (random item rows: the profile's text model comes from a
     hub): seconds and validation NDCG@10 after it;
  4. top-10 for every user on the GPU (the model's logits and top-k on the device) against the
     CPU path the pipeline serves with (faiss when installed): identical ids, and both times.

FLOPs per real token, forward + backward (what MFU divides by the peak):
  6 * N            matmuls of the blocks (N = attention and MLP weights; for MoE the active ones:
                   top-k of the experts, plus the router),
  6 * h * V        the output layer over all V tokens at the token's position (tied weights),
  6 * L * s * d    attention scores and values, causal (half of 12 * L * s * d), s = the batch's
                   mean real length, d = heads x head_dim.

    python -m bench.gpu_check            # on the GPU machine (needs ../shared/data)
    python -m bench.gpu_check --dry-run  # every step on a tiny model and tiny data, on the CPU
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import recsys_pipeline  # noqa: F401  (registers the model family)
from recsys_pipeline.data.split import read_split
from recsys_pipeline.data.vocab import load_vocab
from recsys_pipeline.models.configuration_sasrec import VARIANTS, SASRecConfig
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.settings import PROFILES
from recsys_pipeline.settings import SHARED_SEQUENCES as SHARED_CSV

H200_BF16_DENSE_FLOPS = 989e12  # NVIDIA's H200 SXM figure (dense, no sparsity)
SIZE = ("hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim", "intermediate_size")
# the original project's size: the GPU profile's model
ORIGINAL = {field: getattr(PROFILES["gpu"].sft, field) for field in SIZE}
TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, head_dim=16, intermediate_size=64
)
ROWS: list[tuple[str, str, str]] = []  # (step, what, result): the table


def row(step: str, what: str, result: str) -> None:
    ROWS.append((step, what, result))
    print(f"| {step} | {what} | {result} |", flush=True)


def input_file(dry_run: bool, folder: Path) -> Path:
    """The input: the shared data, or a small synthetic catalog written as the course CSV."""
    if not dry_run:
        if not SHARED_CSV.is_file():
            sys.exit(f"needs the shared data at {SHARED_CSV}")
        return SHARED_CSV
    rng = np.random.default_rng(0)
    path = folder / "sequences.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "history_item_id", "history_item_title"])
        for user in range(400):
            start = int(rng.integers(1, 60))
            steps = range(int(rng.integers(3, 12)))
            items = list(dict.fromkeys((start + step) % 60 + 1 for step in steps))
            writer.writerow([user, str(items), str([f"Game {i}" for i in items])])
    return path


def pipeline_artifacts(source: Path, folder: Path) -> Path:
    """The artifacts folder after the pipeline's raw_csv, sequences and tokenizer assets ran on
    ``source`` in-process: the split and the vocabulary every training step reads."""
    from recsys_pipeline.assets.in_process import Pipeline

    pipeline = Pipeline(source, folder)
    with pipeline.run("*tokenizer", log_level="WARNING"):
        return pipeline.settings().artifacts_dir


def batch(lengths: np.ndarray, size: int, vocab: int, device: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(lengths, size) + 1  # + BOS
    ids = torch.zeros(size, int(chosen.max()), dtype=torch.long)
    for r, n in enumerate(chosen):
        ids[r, :n] = torch.from_numpy(rng.integers(1, vocab - 4, n))
    mask = (ids != 0).long()
    labels = ids.masked_fill(mask == 0, -100)
    return {
        k: v.to(device) for k, v in dict(input_ids=ids, attention_mask=mask, labels=labels).items()
    }


def flops_per_token(model: SASRecForCausalLM, mean_length: float) -> float:
    config = model.config
    blocks = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
    if config.is_moe:
        expert = sum(p.numel() for p in model.model.layers[0].mlp.experts[0].parameters())
        blocks -= (
            config.num_hidden_layers * expert * (config.num_experts - config.num_experts_per_tok)
        )
    d = config.num_attention_heads * config.head_dim
    attention = 6 * config.num_hidden_layers * mean_length * d
    return 6 * blocks + 6 * config.hidden_size * config.vocab_size + attention


def step_time(model: SASRecForCausalLM, batches: list[dict], device: str, bf16: bool) -> float:
    """Seconds of forward + backward over ``batches`` (after one warm-up step)."""
    model.train()

    def step(inputs: dict) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs, return_logits=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    step(batches[0])
    synchronize(device)
    started = time.perf_counter()
    for inputs in batches[1:]:
        step(inputs)
    synchronize(device)
    return time.perf_counter() - started


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(
    variant: str, size: dict, vocab: int, device: str, attn: str = "sdpa"
) -> SASRecForCausalLM:
    torch.manual_seed(0)
    config = SASRecConfig(
        variant=variant, vocab_size=vocab, max_position_embeddings=21, hidden_dropout=0.0, **size
    )
    config._attn_implementation = attn
    return SASRecForCausalLM(config).to(device)


def model_family(device: str, size: dict, vocab: int, lengths: np.ndarray, args: object) -> None:
    bf16 = device == "cuda"
    batches = [batch(lengths, args.batch_size, vocab, device, seed) for seed in range(args.steps)]
    mean_length = float(
        np.mean([b["attention_mask"].sum(1).float().mean().item() for b in batches])
    )
    for variant in VARIANTS:
        model = build(variant, size, vocab, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = step_time(model, batches, device, bf16)
        tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
        rate = tokens / seconds
        mfu = rate * flops_per_token(model, mean_length) / H200_BF16_DENSE_FLOPS
        memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        row(
            "1 model",
            f"{variant}, bf16={bf16}",
            f"{rate:,.0f} tokens/s, MFU {mfu:.1%}, peak {memory:.1f} GiB",
        )
        del model
        if device == "cuda":
            torch.cuda.empty_cache()


def attention_kernels(device: str, size: dict, vocab: int, args: object) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    bf16 = device == "cuda"
    # every row 20 items + BOS: no padding, so no mask, and the flash kernel is allowed
    full = np.full(64, 20)
    batches = [batch(full, args.batch_size, vocab, device, seed) for seed in range(args.steps)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    for name, backend in (
        ("SDPA flash", SDPBackend.FLASH_ATTENTION),
        ("SDPA math", SDPBackend.MATH),
    ):
        model = build("sasrec_rope", size, vocab, device)
        try:
            with sdpa_kernel(backend):
                seconds = step_time(model, batches, device, bf16)
            row("2 attention", name, f"{tokens / seconds:,.0f} tokens/s")
        except RuntimeError as exc:
            row("2 attention", name, f"not available: {str(exc).splitlines()[0][:90]}")
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        row("2 attention", "flash-attn 2", "skipped: the flash-attn wheel is not installed")
        return
    model = build("sasrec_rope", size, vocab, device, "flash_attention_2")
    seconds = step_time(model, batches, device, bf16)
    row("2 attention", "flash-attn 2", f"{tokens / seconds:,.0f} tokens/s")


def sft_epoch(device: str, args: object, artifacts: Path) -> object:
    from recsys_pipeline.training.settings import SFTSettings
    from recsys_pipeline.training.sft import run_request

    split, vocab = read_split(artifacts / "sequences"), load_vocab(artifacts / "tokenizer")
    base = PROFILES["gpu"].sft.model_dump() if not args.dry_run else {**TINY, "batch_size": 64}
    settings = SFTSettings(**{**base, "init": "random", "stage1_epochs": 0, "stage2_epochs": 1})
    with tempfile.TemporaryDirectory() as tmp:
        # the request the sft_checkpoint asset hands the same function (random rows: no vectors)
        request = {
            "sequences": str(artifacts / "sequences"),
            "tokenizer": str(artifacts / "tokenizer"),
            "settings": settings.model_dump(),
            "work_dir": str(Path(tmp) / "work"),
            "out_dir": str(Path(tmp) / "out"),
        }
        report = run_request(request, log=lambda line: None)
        model = SASRecForCausalLM.from_pretrained(Path(tmp) / "out").to(device)
    row(
        "3 SFT epoch",
        f"{len(split.full):,} users, {settings.hidden_size} wide, batch {settings.batch_size}",
        f"{report.train_seconds:.1f} s, validation NDCG@10 {report.best_metrics['ndcg@10']:.4f} "
        f"(on {report.device})",
    )
    return model, split, vocab


def retrieval(device: str, model: object, split: object, vocab: object) -> None:
    from recsys_pipeline.ranking.metrics import top_k
    from recsys_pipeline.ranking.scoring import model_inputs

    histories = split.inputs_for("next")
    model = model.to(device).eval()
    synchronize(device)
    started = time.perf_counter()
    tops = []
    with torch.no_grad():
        for start in range(0, len(histories), 4096):
            ids, mask = model_inputs(model, histories.rows(start, start + 4096), vocab)
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
            tops.append(top_k(logits[:, vocab.item_token_slice].float(), 10))
    synchronize(device)
    on_device = time.perf_counter() - started
    found = vocab.items_of_columns(np.concatenate(tops))
    model = model.to("cpu")
    started = time.perf_counter()
    try:
        from recsys_pipeline.ranking.retrieval import build_index, recommend
        from recsys_pipeline.ranking.scoring import item_output_vectors

        index = build_index(item_output_vectors(model, vocab).numpy(), "flat")
        reference = recommend(model, index, histories, vocab, 10).items
        how = "faiss (CPU)"
    except ImportError:
        from recsys_pipeline.ranking.full_ranking import rank_users
        from recsys_pipeline.ranking.scoring import model_scorer

        reference = rank_users(model_scorer(model, vocab), histories, vocab).top_items
        how = "torch (CPU; faiss not installed)"
    on_cpu = time.perf_counter() - started
    same = float((found == reference).all(axis=1).mean())
    row(
        "4 retrieval",
        f"top-10 for {len(histories):,} users, {device} vs {how}",
        f"{on_device:.2f} s vs {on_cpu:.2f} s; identical lists for {same:.2%} of users",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="tiny model and data, on the CPU")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --dry-run to check the script on the CPU")
    args.steps = args.steps or (3 if args.dry_run else 12)
    args.batch_size = args.batch_size or (16 if args.dry_run else 1024)
    size = TINY if args.dry_run else ORIGINAL
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = pipeline_artifacts(input_file(args.dry_run, Path(tmp)), Path(tmp) / "data")
        vocab = load_vocab(artifacts / "tokenizer").vocab_size
        lengths = np.minimum(read_split(artifacts / "sequences").full.lengths, 20)
        name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
        print(f"{time.strftime('%Y-%m-%d')}, {name}, torch {torch.__version__}")
        print("| step | what | result |\n|---|---|---|")
        model_family(device, size, vocab, lengths, args)
        attention_kernels(device, size, vocab, args)
        model, split, item_vocab = sft_epoch(device, args, artifacts)
    retrieval(device, model, split, item_vocab)
    assert len(ROWS) == len(VARIANTS) + 3 + 2, ROWS  # every step gave its rows


if __name__ == "__main__":
    main()
