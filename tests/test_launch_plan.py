"""Where the recipes train: the device, backend and torchrun command line, decided in one place
(asr_trainer/train/launch_plan.py) and tested with a faked GPU count (``ASR_FAKE_GPUS``) through the recipe's
``--dry-run true``, which prints the stage-5 command lines instead of running them."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from asr_trainer.errors import UserError
from asr_trainer.train.launch_plan import LaunchRequest, make_plan

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


def _recipe(tmp_path: Path, *options: str, gpus: int = 0, script: str = "run.sh") -> subprocess.CompletedProcess:
    """The recipe with ``options``, ``gpus`` GPUs faked, the repository's .venv as it is (no bootstrap)."""
    if not (VENV_BIN / "asr-trainer").exists():
        pytest.skip("no .venv at the repository root (the recipe bootstraps one)")
    env = {**os.environ, "ASR_FAKE_GPUS": str(gpus), "ASR_SETUP": "none",
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["bash", script, "--data-root", str(tmp_path / "data"), "--exp-root", str(tmp_path / "exp"), *options]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _stage5_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("stage 5 (")]


# ---------------------------------------------------------------- the decision
def test_two_gpus_give_one_nccl_worker_per_gpu():
    plan = make_plan(LaunchRequest(), gpus_visible=2)
    assert (plan.device, plan.backend, plan.gpus, plan.workers) == ("cuda", "nccl", 2, (2,))
    assert plan.torchrun(2) == ["torchrun", "--standalone", "--nproc-per-node", "2", "--no-python"]
    assert plan.settings == ("device=cuda", "bf16=false")


def test_no_gpu_gives_gloo_on_the_cpu_with_four_workers():
    plan = make_plan(LaunchRequest(), gpus_visible=0)
    assert (plan.device, plan.backend, plan.workers, plan.settings) == ("cpu", "gloo", (4,), ("device=cpu", "bf16=false"))
    assert make_plan(LaunchRequest(device="cpu"), gpus_visible=8).backend == "gloo"
    assert make_plan(LaunchRequest(gpus=0), gpus_visible=8).device == "cpu"


def test_several_nodes_split_the_workers_and_meet_at_the_endpoint():
    plan = make_plan(LaunchRequest(workers=(8, 16), nnodes=2, node_rank=1, rdzv_endpoint="host0:29400",
                                   dtype="bf16"), gpus_visible=8)
    assert plan.settings == ("device=cuda", "bf16=true")
    line = " ".join(plan.torchrun(8))
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint host0:29400" in line
    assert "--nproc-per-node 4" in line and "--nproc-per-node 8" in " ".join(plan.torchrun(16))


@pytest.mark.parametrize("request_, gpus, message", [
    (LaunchRequest(device="cuda"), 0, "torch sees no GPU"),
    (LaunchRequest(device="gpu"), 1, "--device must be one of"),
    (LaunchRequest(device="cuda", gpus=0), 2, "--gpus 0"),
    (LaunchRequest(gpus=3), 2, "--gpus must be between 1 and the 2 visible"),
    (LaunchRequest(gpus=2), 0, "--gpus 2 with the device cpu"),
    (LaunchRequest(device="cpu", gpus=1), 4, "--gpus 1 with the device cpu"),
    (LaunchRequest(workers=(4,)), 2, "needs 4 GPUs a node"),
    (LaunchRequest(workers=(3,), nnodes=2, rdzv_endpoint="h:1"), 8, "multiple of --nnodes 2"),
    (LaunchRequest(nnodes=2), 8, "needs --rdzv-endpoint"),
    (LaunchRequest(nnodes=2, node_rank=2, rdzv_endpoint="h:1"), 8, "--node-rank must be in 0..1"),
    (LaunchRequest(dtype="bf16"), 0, "--dtype bf16"),
    (LaunchRequest(dtype="fp16"), 1, "--dtype must be one of"),
])
def test_bad_requests_are_user_errors(request_, gpus, message):
    with pytest.raises(UserError, match=re.escape(message)):
        make_plan(request_, gpus)


# ---------------------------------------------------------------- the recipe
def test_recipe_with_two_gpus_starts_torchrun_with_nccl_and_device_cuda(tmp_path):
    proc = _recipe(tmp_path, "--dry-run", "true", gpus=2)
    assert proc.returncode == 0, proc.stderr
    assert "backend nccl" in proc.stdout
    lines = _stage5_lines(proc.stdout)
    assert len(lines) == 4, proc.stdout  # allreduce gtc bmuf hybrid at 2 workers
    for line in lines:
        assert "torchrun --standalone --nproc-per-node 2 --no-python asr-trainer train" in line
        assert " device=cuda " in line and "-w2 " in line
    assert not (tmp_path / "exp").exists() and not (tmp_path / "data").exists()  # a dry run writes nothing


def test_recipe_without_gpu_starts_torchrun_with_gloo_and_device_cpu(tmp_path):
    proc = _recipe(tmp_path, "--dry-run", "true", "--workers", "2 4", "--strategies", "gtc", gpus=0)
    assert proc.returncode == 0, proc.stderr
    assert "backend gloo" in proc.stdout
    lines = _stage5_lines(proc.stdout)
    assert [re.search(r"--nproc-per-node (\d+)", line).group(1) for line in lines] == ["2", "4"]
    assert all(" device=cpu " in line for line in lines)


def test_recipe_on_two_nodes_runs_stage_5_only(tmp_path):
    nodes = ["--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "host0:29400", "--dry-run", "true"]
    proc = _recipe(tmp_path, *nodes, "--stage", "5", "--stop-stage", "5", "--strategies", "gtc", gpus=4)
    assert proc.returncode == 0, proc.stderr
    [line] = _stage5_lines(proc.stdout)
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint host0:29400" in line
    assert "--nproc-per-node 4" in line and "gtc-w8 " in line
    refused = _recipe(tmp_path, *nodes, gpus=4)
    assert refused.returncode == 1 and "--stage 5 --stop-stage 5" in refused.stderr


@pytest.mark.parametrize("args, message", [
    (["--dry-run", "true", "device=cuda"], "unexpected argument 'device=cuda'"),
    (["--dry-run", "true", "--device", "cuda"], "torch sees no GPU"),
    (["--dry-run", "true", "--workers", "four"], "--workers takes positive integers"),
    (["--dry-run", "yes"], "--dry-run must be true or false"),
])
def test_recipe_refuses_bad_arguments_clearly(tmp_path, args, message):
    proc = _recipe(tmp_path, *args, gpus=0)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("script", ["run.sh", "recipes/scaling/run.sh"])
def test_both_recipes_share_the_options(script):
    text = subprocess.run(["bash", script, "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for option in ("--workers", "--epochs", "--device", "--gpus", "--profile", "--nj", "--data-root", "--exp-root"):
        assert re.search(rf"^\s+{option}\b", text, re.M), (script, option)


def test_slurm_script_runs_the_recipes_stage_5_on_every_node(tmp_path):
    """recipes/multinode/train.sbatch with stand-ins for scontrol and srun (node 1 of node0, node1; 8 GPUs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # node0 first, then enough names to fill a pipe: a reader that stops after the first line (head -n 1)
    # would kill scontrol with SIGPIPE, and the script under pipefail with it (exit 141), every time
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\nprintf 'node%d\\n' $(seq 0 99999)\n")
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\nwhile [[ $1 == --* ]]; do shift; done\n'
                                  'SLURM_NODEID=1 exec "$@"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {**os.environ, "ASR_FAKE_GPUS": "8", "ASR_SETUP": "none", "SLURM_JOB_NODELIST": "node[0-1]",
           "SLURM_NNODES": "2", "SLURM_SUBMIT_DIR": str(ROOT),
           "PATH": os.pathsep.join([str(bin_dir), str(VENV_BIN), os.environ["PATH"]])}
    if not (VENV_BIN / "asr-trainer").exists():
        pytest.skip("no .venv at the repository root (the recipe bootstraps one)")
    proc = subprocess.run(["bash", "recipes/multinode/train.sbatch", "--dry-run", "true", "--strategies", "gtc",
                           "--data-root", str(tmp_path / "data"), "--exp-root", str(tmp_path / "exp")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [line] = _stage5_lines(proc.stdout)
    assert "--nnodes 2 --node-rank 1 --rdzv-backend c10d --rdzv-endpoint node0:29400" in line
    assert "--nproc-per-node 8" in line and "gtc-w16 " in line and " device=cuda " in line


@pytest.mark.parametrize("args, message", [
    (["--gtc-lr-scaling", "cubic"], "--gtc-lr-scaling must be none, sqrt or linear"),
    (["--lr-scaling", "square"], "--lr-scaling must be none, sqrt or linear"),
    (["--profile", "huge"], "--profile must be quick, default or study"),
    (["--norm", "group"], "--norm must be instance, layer or batch"),
])
def test_scaling_recipe_refuses_bad_settings_before_any_stage(tmp_path, args, message):
    proc = _recipe(tmp_path, *args, script="recipes/scaling/run.sh")
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "exp").exists() and not (tmp_path / "data").exists()


def test_scaling_recipe_simulates_on_one_gpu(tmp_path):
    proc = _recipe(tmp_path, "--gpus", "2", gpus=2, script="recipes/scaling/run.sh")
    assert proc.returncode == 1 and "a simulated cluster runs in one process on one GPU" in proc.stderr
    assert not (tmp_path / "exp").exists()
