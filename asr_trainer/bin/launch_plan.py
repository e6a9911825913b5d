"""``asr-trainer launch-plan``: the recipes' device, backend, workers and torchrun command lines.

    eval "$(asr-trainer launch-plan --device auto --workers "4 8")"   # what ./run.sh does
    ASR_FAKE_GPUS=2 asr-trainer launch-plan --format text             # the decision with 2 GPUs faked
"""

from __future__ import annotations

import argparse

from asr_trainer.errors import UserError

HELP = "decide device (auto: cuda when torch sees a GPU), backend, worker counts and torchrun lines of a recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: cuda when torch sees a GPU)")
    parser.add_argument("--gpus", default="", help="GPUs a node uses, one worker each (empty: every visible GPU; 0: none, "
                        "so --device auto is cpu)")
    parser.add_argument("--workers", default="",
                        help="worker counts of the strategy runs, e.g. '4' or '32 64 128' (empty: one per GPU of "
                             "every node on cuda, 4 per node on cpu)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes of every strategy run")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's rank, 0..nnodes-1")
    parser.add_argument("--rdzv-endpoint", default="", help="HOST:PORT of the c10d rendezvous (nnodes > 1)")
    parser.add_argument("--dtype", default="fp32", help="fp32 | bf16 (bfloat16 autocast, cuda only)")
    parser.add_argument("--format", choices=["shell", "text"], default="shell",
                        help="shell: bash assignments for eval; text: the plan and the torchrun lines")


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """``"32 64,128"`` -> ``(32, 64, 128)``; anything else than positive integers is a :class:`UserError`."""
    words = text.replace(",", " ").split()
    if not all(w.isdigit() and int(w) > 0 for w in words):
        raise UserError(f"{option} takes positive integers such as '4' or '32 64 128', got {text!r}")
    return tuple(int(w) for w in words)


def parse_gpus(text: str) -> int | None:
    """``--gpus``: None when empty (every visible GPU), else one count >= 0 (0: no GPU)."""
    if not text.strip():
        return None
    if not text.strip().isdigit():
        raise UserError(f"--gpus takes one count (0, 1, 2, ...), got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> None:
    from asr_trainer.train.launch_plan import LaunchRequest, make_plan, visible_gpus

    request = LaunchRequest(args.device, parse_gpus(args.gpus), parse_counts(args.workers, "--workers"),
                            args.nnodes, args.node_rank, args.rdzv_endpoint, args.dtype)
    plan = make_plan(request, visible_gpus())
    if args.format == "shell":
        print(plan.shell(), end="")
        return
    print(plan.describe())
    for n in plan.workers:
        print(" ".join(plan.torchrun(n)), "asr-trainer train ...", " ".join(plan.settings))
