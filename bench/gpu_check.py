"""GPU check: a short sweep with `gpu: 1`, then `gpu: 0.25`, on a machine with a GPU.

    python bench/gpu_check.py            # on a GPU machine; about 1-2 minutes
    python bench/gpu_check.py --logical  # no GPU: Ray is told of 1 logical GPU (packing only)

For each setting it prints the wall time, how many trials ran at once, the device
every trial trained on (from the trial's own tags: torch's device, Ray's GPU ids,
CUDA_VISIBLE_DEVICES) and the GPU utilisation sampled with nvidia-smi. It exits
non-zero when a trial did not train on CUDA or `gpu: 0.25` did not pack trials.
Tracking is off: the check is about placement, not records.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_S = 0.25  # nvidia-smi sampling period
TIME_LIMIT_S = 300  # the whole check must finish within 5 minutes


def gpu_trainable(config):
    """The built-in digits CNN, tagging the device it really trained on."""
    import torch

    import orchestrator
    from trainables.digits import digits_cnn

    cuda = torch.cuda.is_available()
    orchestrator.set_tag("device", "cuda" if cuda else "cpu")
    orchestrator.set_tag("device_name", torch.cuda.get_device_name(0) if cuda else "cpu")
    digits_cnn(config)


class UtilSampler(threading.Thread):
    """Samples GPU utilisation (%) and memory (MiB) with nvidia-smi until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()
        self.available = shutil.which("nvidia-smi") is not None

    def run(self) -> None:
        while self.available and not self.stop_event.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, check=False).stdout.strip().splitlines()
            if out:
                util, mem = (float(x) for x in out[0].split(","))
                self.samples.append((util, mem))
            time.sleep(SAMPLE_S)

    def summary(self) -> str:
        if not self.samples:
            return "no nvidia-smi samples"
        utils = [u for u, _ in self.samples]
        busy = [u for u in utils if u > 0]
        return (f"GPU util mean {sum(utils) / len(utils):.0f}% (busy samples "
                f"{len(busy)}/{len(utils)}), max {max(utils):.0f}%, "
                f"memory max {max(m for _, m in self.samples):.0f} MiB")


def max_overlap(records) -> int:
    events = sorted([(r.started, 1) for r in records] + [(r.ended, -1) for r in records])
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def run_one(gpu: float, *, trials: int, epochs: int) -> tuple[bool, str]:
    import orchestrator

    spec = {"name": f"gpu-check-{gpu:g}", "method": "random", "seed": 0,
            "metric": {"name": "val_loss"}, "run_cap": trials,
            "resources": {"cpu": 1, "gpu": gpu},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3,
                                  "max": 1e-2},
                           "epochs": {"value": epochs}, "batch_size": {"value": 64},
                           "channels": {"value": 32}}}
    sampler = UtilSampler()
    sampler.start()
    result = orchestrator.sweep(spec, trainable=gpu_trainable, tracking=False)
    sampler.stop_event.set()
    sampler.join()
    lines = [f"gpu: {gpu:g} — {len(result.records)} trials in {result.wall_s:.1f}s, "
             f"at most {max_overlap(result.records)} at once; {sampler.summary()}"]
    ok = result.counts["completed"] == trials
    for r in result.records:
        device = r.tags.get("device", "?")
        ok = ok and device == "cuda"
        lines.append(f"  {r.trial_id} {r.outcome:9s} device={device} "
                     f"({r.tags.get('device_name', '?')}) ray_gpu_ids={r.tags.get('gpu_ids')!r} "
                     f"CUDA_VISIBLE_DEVICES={r.tags.get('cuda_visible_devices')!r} "
                     f"val_acc={r.history[-1].get('val_acc', float('nan')) if r.history else 'n/a'}"
                     f" {r.error or ''}")
    if gpu < 1:
        ok = ok and max_overlap(result.records) >= 2
    return ok, "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logical", action="store_true",
                        help="no GPU here: declare 1 logical GPU to Ray (tests packing only)")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    started = time.time()

    import ray
    import torch

    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA available: {cuda}, "
          f"devices: {torch.cuda.device_count() if cuda else 0}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""))
    if not cuda and not args.logical:
        print("no CUDA device: run with --logical to check packing with a logical GPU")
        return 2
    ray.init(num_cpus=min(os.cpu_count() or 2, 8),
             num_gpus=torch.cuda.device_count() if cuda else 1,
             include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 [str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    all_ok = True
    for gpu in (1.0, 0.25):
        ok, text = run_one(gpu, trials=args.trials, epochs=args.epochs)
        print(text, flush=True)
        all_ok = all_ok and (ok or args.logical)
    elapsed = time.time() - started
    print(f"total {elapsed:.1f}s (limit {TIME_LIMIT_S}s): "
          f"{'OK' if all_ok and elapsed < TIME_LIMIT_S else 'FAILED'}")
    return 0 if all_ok and elapsed < TIME_LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
