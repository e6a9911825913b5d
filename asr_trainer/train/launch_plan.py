"""Where the recipes train: the device, the process-group backend, the workers and the torchrun command line.

The one place that decides it (``./run.sh`` and ``recipes/scaling/run.sh`` ask it through
``asr-trainer launch-plan``)::

    plan = make_plan(LaunchRequest(device="auto"), visible_gpus())
    plan.backend                  # "nccl" on cuda, "gloo" on cpu
    plan.torchrun(4)              # ["torchrun", "--standalone", "--nproc-per-node", "4", "--no-python"]
    plan.settings                 # ("device=cuda", "bf16=false"): the trainer's settings

``device=auto`` is cuda when torch sees a GPU. On cuda every worker has a GPU of its own (nccl refuses two
ranks on one device), so a run of ``N`` workers over ``nnodes`` nodes takes ``N / nnodes`` of the ``gpus``
GPUs of each node; on cpu the processes share the cores (gloo). The environment variable
``ASR_FAKE_GPUS=N`` stands in for the visible GPU count (tests of the decision on a machine without one).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from asr_trainer.errors import UserError

FAKE_GPUS_ENV = "ASR_FAKE_GPUS"
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("fp32", "bf16")
CPU_WORKERS_PER_NODE = 4  # the recipe's worker count on a CPU node (processes share the cores)
RDZV_ID = "asr-trainer"


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for: ``gpus`` per node (None: every visible one; 0: none), the strategy runs' worker counts
    (empty: one worker per GPU of every node on cuda, :data:`CPU_WORKERS_PER_NODE` per node on cpu)."""

    device: str = "auto"
    gpus: int | None = None
    workers: tuple[int, ...] = ()
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""
    dtype: str = "fp32"


@dataclass(frozen=True)
class LaunchPlan:
    """The decision: ``device`` (cpu | cuda), ``backend``, ``gpus`` per node, ``workers`` of the strategy runs."""

    device: str
    gpus: int
    workers: tuple[int, ...]
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""
    bf16: bool = False

    @property
    def backend(self) -> str:
        """The process-group backend the trainer joins with this device (see :mod:`asr_trainer.train.distributed`)."""
        return "nccl" if self.device == "cuda" else "gloo"

    @property
    def settings(self) -> tuple[str, ...]:
        """The trainer's ``key=value`` settings of every run (baseline, strategy runs, decoding reads ``device``)."""
        return (f"device={self.device}", f"bf16={str(self.bf16).lower()}")

    def torchrun(self, workers: int) -> list[str]:
        """The torchrun command line (up to the program) of a run of ``workers`` processes over all nodes."""
        if workers not in self.workers:
            raise UserError(f"{workers} workers is not a run of this plan (workers {list(self.workers)})")
        per_node = ["--nproc-per-node", str(workers // self.nnodes), "--no-python"]
        if self.nnodes == 1:
            return ["torchrun", "--standalone", *per_node]
        return ["torchrun", "--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank), "--rdzv-backend",
                "c10d", "--rdzv-endpoint", self.rdzv_endpoint, "--rdzv-id", f"{RDZV_ID}-w{workers}", *per_node]

    def describe(self) -> str:
        """One line for the console."""
        where = f"{self.gpus} GPU(s) a node" if self.device == "cuda" else "the CPU cores"
        return (f"device {self.device}{' (bf16 autocast)' if self.bf16 else ''}, backend {self.backend}, "
                f"{self.nnodes} node(s), {where}; strategy runs at {' '.join(map(str, self.workers))} workers")

    def shell(self) -> str:
        """Bash assignments for a recipe's ``eval``: device, backend, gpus, workers, the array ``device_opts``
        and one array ``launch_N`` (the torchrun command line) per worker count ``N``."""
        q = shlex.quote
        lines = [f"device={self.device}", f"backend={self.backend}", f"gpus={self.gpus}",
                 f"workers={q(' '.join(map(str, self.workers)))}",
                 f"device_opts=({' '.join(map(q, self.settings))})",
                 f"launch_plan={q(self.describe())}"]
        lines += [f"launch_{n}=({' '.join(map(q, self.torchrun(n)))})" for n in self.workers]
        return "\n".join(lines) + "\n"


def visible_gpus() -> int:
    """GPUs torch can use here; ``ASR_FAKE_GPUS`` overrides (tests on a machine without one)."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        if not fake.isdigit():
            raise UserError(f"{FAKE_GPUS_ENV} must be a GPU count (0, 1, 2, ...), got {fake!r}")
        return int(fake)
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(device: str, gpus_visible: int) -> str:
    """``cpu`` or ``cuda`` for the request ``auto | cpu | cuda`` on a node with ``gpus_visible`` GPUs."""
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r} "
                        "(choose GPUs with CUDA_VISIBLE_DEVICES)")
    if device == "auto":
        return "cuda" if gpus_visible > 0 else "cpu"
    if device == "cuda" and gpus_visible == 0:
        raise UserError("--device cuda: torch sees no GPU here (torch.cuda.is_available() is False); "
                        "use --device cpu or a CUDA build of torch")
    return device


def gpus_per_node(request: LaunchRequest, device: str, gpus_visible: int) -> int:
    """The GPUs a node uses: ``request.gpus`` (checked against the visible ones) or all of them; 0 on cpu."""
    if device == "cpu":
        if request.gpus:
            raise UserError(f"--gpus {request.gpus} with the device cpu (--device cpu, or torch sees no GPU): "
                            "leave --gpus out, or use --gpus 0")
        return 0
    if request.gpus is None:
        return gpus_visible
    if not 1 <= request.gpus <= gpus_visible:
        raise UserError(f"--gpus must be between 1 and the {gpus_visible} visible GPU(s), got {request.gpus}")
    return request.gpus


def worker_counts(request: LaunchRequest, device: str, gpus: int) -> tuple[int, ...]:
    """The strategy runs' worker counts (the request's, or the default), each checked against the nodes."""
    per_node_default = gpus if device == "cuda" else CPU_WORKERS_PER_NODE
    counts = request.workers or (per_node_default * request.nnodes,)
    for n in counts:
        if n < 1 or n % request.nnodes:
            raise UserError(f"--workers {n}: a worker count must be a positive multiple of --nnodes "
                            f"{request.nnodes} (the same number of processes on every node)")
        if device == "cuda" and n // request.nnodes > gpus:
            raise UserError(f"--workers {n} on {request.nnodes} node(s) needs {n // request.nnodes} GPUs a node "
                            f"(one per worker), only {gpus} used (--gpus)")
    return tuple(counts)


def check_nodes(request: LaunchRequest) -> None:
    """``nnodes``, ``node_rank`` and the rendezvous endpoint agree."""
    if request.nnodes < 1:
        raise UserError(f"--nnodes must be >= 1, got {request.nnodes}")
    if not 0 <= request.node_rank < request.nnodes:
        raise UserError(f"--node-rank must be in 0..{request.nnodes - 1}, got {request.node_rank}")
    if request.nnodes > 1 and not request.rdzv_endpoint:
        raise UserError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")


def make_plan(request: LaunchRequest, gpus_visible: int) -> LaunchPlan:
    """The plan of ``request`` on a node with ``gpus_visible`` GPUs; bad requests raise :class:`UserError`."""
    check_nodes(request)
    if request.dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {request.dtype!r}")
    if request.gpus == 0 and request.device == "cuda":
        raise UserError("--device cuda with --gpus 0: a GPU run needs at least one GPU")
    device = resolve_device(request.device, 0 if request.gpus == 0 else gpus_visible)
    if request.dtype == "bf16" and device != "cuda":
        raise UserError("--dtype bf16 is bfloat16 autocast on a GPU; the device is cpu here (use --dtype fp32)")
    gpus = gpus_per_node(request, device, gpus_visible)
    return LaunchPlan(device, gpus, worker_counts(request, device, gpus), request.nnodes, request.node_rank,
                      request.rdzv_endpoint, request.dtype == "bf16")
