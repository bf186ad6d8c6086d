"""GPU check: placement (digits CNN, ``gpu: 1`` then ``0.25``) and packing throughput (a model
and batch that load a large GPU, ``gpu: 1``, ``0.5`` and ``0.25`` side by side).

    python bench/gpu_check.py                 # a GPU machine: placement, then packing
    python bench/gpu_check.py --packing-only  # only the packing part
    python bench/gpu_check.py --cpu           # no GPU: the same code, tiny sizes, on CPU
                                              # (Ray is told of 1 logical GPU); seconds
    python bench/gpu_check.py --logical       # no GPU: the placement part, packing only

**Placement** prints, for each setting, the wall time, how many trials ran at once and the
device every trial trained on (from the trial's own tags: torch's device, Ray's GPU ids,
``CUDA_VISIBLE_DEVICES``). It fails when a trial did not train on CUDA or ``gpu: 0.25``
did not pack trials.

**Packing** runs the same fixed work per trial (``--steps`` optimiser steps of a wide
residual conv net on synthetic images kept on the device, bf16 autocast, channels-last)
for each ``gpu:`` setting, with as many trials as the setting lets run at once times two
(``gpu: 0.25``: 8 trials, 4 at a time). Each trial gets ``cpu = machine CPUs x gpu``
(capped at Ray's CPUs) and sets ``torch.set_num_threads`` to the CPUs Ray gave it. It
prints trials per hour (work done / wall time), images per second summed over trials, GPU
utilisation and memory (nvidia-smi, every 0.25 s), and the ratio to ``gpu: 1``.
Tracking is off: the check is about placement and throughput, not records.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_S = 0.25  # nvidia-smi sampling period
TIME_LIMIT_S = 300  # placement part: must finish within 5 minutes
PACKING_SETTINGS = (1.0, 0.5, 0.25)  # gpu per trial, side by side
# The packing model on a large GPU (an H200): about 5-10 GB of activations per trial at
# bf16, so four trials fit together and one alone keeps the SMs busy.
GPU_SIZE = {"image": 128, "batch": 256, "width": 128, "blocks": 2, "steps": 60}
CPU_SIZE = {"image": 16, "batch": 4, "width": 8, "blocks": 1, "steps": 2}  # --cpu: seconds
TRIAL_TIME_CAP_S = 120  # a trial stops here whatever its steps (the device time is short)


# ----------------------------------------------------------------------------- placement


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

    def stats(self) -> dict[str, float]:
        if not self.samples:
            return {}
        utils = [u for u, _ in self.samples]
        return {"util_mean": sum(utils) / len(utils), "util_max": max(utils),
                "busy_share": sum(u > 0 for u in utils) / len(utils),
                "mem_max_mib": max(m for _, m in self.samples)}

    def summary(self) -> str:
        s = self.stats()
        if not s:
            return "no nvidia-smi samples"
        return (f"GPU util mean {s['util_mean']:.0f}% (busy samples {s['busy_share']:.0%}), "
                f"max {s['util_max']:.0f}%, memory max {s['mem_max_mib']:.0f} MiB")


def max_overlap(records) -> int:
    events = sorted([(r.started, 1) for r in records if r.started] +
                    [(r.ended, -1) for r in records if r.ended])
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


# ----------------------------------------------------------------------------- packing


def build_model(width: int, blocks: int, classes: int = 100):
    """A wide residual conv net: a stem, three stages of ``blocks`` residual blocks
    (widths w, 2w, 4w, each stage halving the resolution), pooling and a linear head."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout)))
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.act(self.body(x) + self.skip(x))

    layers: list[Any] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True)]
    cin = width
    for stage, mult in enumerate((1, 2, 4)):
        for b in range(blocks):
            layers.append(Block(cin, width * mult, 2 if b == 0 and stage > 0 else 1))
            cin = width * mult
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def trial_cpus() -> int:
    """The CPUs Ray gave this trial (1 outside Ray)."""
    try:
        import ray

        return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - not inside a Ray worker
        return 1


def packing_trainable(config):
    """Fixed work: ``steps`` SGD steps on synthetic images made on the device (nothing is
    copied from the host per step), bf16 autocast on CUDA, channels-last; reports
    ``loss``, the images per second and the steps done."""
    import torch

    import orchestrator

    threads = trial_cpus()
    torch.set_num_threads(threads)  # the trial's CPUs, not the whole machine's
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(int(config.get("seed", 0)))
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    image, batch = int(config["image"]), int(config["batch"])
    model = build_model(int(config["width"]), int(config["blocks"])).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=float(config["lr"]), momentum=0.9)
    x = torch.randn(batch, 3, image, image, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()
    orchestrator.set_tag("device", str(device))
    orchestrator.set_tag("torch_threads", str(threads))
    steps, done = int(config["steps"]), 0
    warm = min(3, max(steps - 1, 0))  # at least one step is timed
    t0 = t_warm = time.perf_counter()
    for step in range(steps):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += 1
        if step + 1 == warm:  # cudnn autotuning and allocator warm-up are not throughput
            if cuda:
                torch.cuda.synchronize()
            t_warm = time.perf_counter()
        if time.perf_counter() - t0 > TRIAL_TIME_CAP_S:
            break
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t_warm
    measured = done - warm
    orchestrator.report({"loss": float(loss.item()), "steps_done": float(done),
                         "images_per_s": batch * measured / elapsed if measured > 0 and
                         elapsed > 0 else 0.0,
                         "seconds": time.perf_counter() - t0,
                         "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20
                         if cuda else 0.0})


def run_packing(gpu: float, *, size: dict[str, int], cpus: int, trials: int
                ) -> dict[str, Any]:
    import orchestrator

    per_trial_cpu = max(1, min(cpus, int(cpus * gpu)))
    spec = {"name": f"gpu-packing-{gpu:g}", "method": "random", "seed": 0,
            "metric": {"name": "loss"}, "run_cap": trials,
            "max_concurrent": max(1, round(1 / gpu)),
            "resources": {"cpu": per_trial_cpu, "gpu": gpu},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3,
                                  "max": 1e-2},
                           **{k: {"value": v} for k, v in size.items()}}}
    sampler = UtilSampler()
    sampler.start()
    t0 = time.perf_counter()
    result = orchestrator.sweep(spec, trainable=packing_trainable, tracking=False)
    wall = time.perf_counter() - t0
    sampler.stop_event.set()
    sampler.join()
    last = [r.history[-1] for r in result.records if r.history]
    work = sum(h.get("steps_done", 0.0) for h in last) / size["steps"]  # trials' worth
    span = result.wall_s
    return {"gpu": gpu, "trials": trials, "completed": result.counts["completed"],
            "cpu_per_trial": per_trial_cpu, "at_once": max_overlap(result.records),
            "wall_s": wall, "fit_s": span, "trials_per_hour": 3600 * work / span if span else 0,
            "images_per_s_sum_mean": sum(h.get("images_per_s", 0.0) for h in last)
            / max(len(last), 1) * max_overlap(result.records),
            "images_per_s_per_trial": [round(h.get("images_per_s", 0.0), 1) for h in last],
            "peak_mem_mib_per_trial": max((h.get("peak_mem_mib", 0.0) for h in last),
                                          default=0.0),
            "torch_threads": sorted({r.tags.get("torch_threads", "?") for r in result.records}),
            "devices": sorted({r.tags.get("device", "?") for r in result.records}),
            "errors": [r.error for r in result.records if r.error][:2],
            **sampler.stats()}


def packing(size: dict[str, int], cpus: int) -> tuple[bool, str, list[dict[str, Any]]]:
    rows = []
    for gpu in PACKING_SETTINGS:
        rows.append(run_packing(gpu, size=size, cpus=cpus, trials=2 * max(1, round(1 / gpu))))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["trials_per_hour"] or float("nan")
    lines = [f"packing: {size} per trial; trials per hour = work done / (first start to last "
             "end); x gpu:1 = ratio to gpu: 1, same run",
             f"{'gpu':>5} {'trials':>6} {'at once':>7} {'cpu/trial':>9} {'threads':>7} "
             f"{'fit s':>7} {'trials/h':>9} {'x gpu:1':>7} {'img/s (sum)':>11} "
             f"{'util mean':>9} {'util max':>8} {'mem MiB':>8}"]
    for r in rows:
        lines.append(f"{r['gpu']:>5g} {r['trials']:>6} {r['at_once']:>7} {r['cpu_per_trial']:>9} "
                     f"{','.join(r['torch_threads']):>7} {r['fit_s']:>7.1f} "
                     f"{r['trials_per_hour']:>9.0f} {r['trials_per_hour'] / base:>7.2f} "
                     f"{r['images_per_s_sum_mean']:>11.0f} {r.get('util_mean', float('nan')):>9.0f} "
                     f"{r.get('util_max', float('nan')):>8.0f} "
                     f"{r.get('mem_max_mib', float('nan')):>8.0f}")
    ok = all(r["completed"] == r["trials"] for r in rows)
    return ok, "\n".join(lines), rows


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logical", action="store_true",
                        help="no GPU here: declare 1 logical GPU to Ray (tests packing only)")
    parser.add_argument("--cpu", action="store_true",
                        help="no GPU: run the packing code at tiny sizes on CPU (logical GPU)")
    parser.add_argument("--packing-only", action="store_true", help="skip the placement part")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, help="packing: optimiser steps per trial")
    parser.add_argument("--batch", type=int, help="packing: images per step")
    parser.add_argument("--out", type=Path, help="packing rows as JSON")
    args = parser.parse_args()
    started = time.time()

    import ray
    import torch

    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA available: {cuda}, "
          f"devices: {torch.cuda.device_count() if cuda else 0}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""), flush=True)
    if not cuda and not (args.logical or args.cpu):
        print("no CUDA device: run with --cpu (packing code on CPU) or --logical")
        return 2
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus if cuda else max(cpus, 4),
             num_gpus=torch.cuda.device_count() if cuda else 1,
             include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 [str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    all_ok = True
    if not args.cpu and not args.packing_only:
        for gpu in (1.0, 0.25):
            ok, text = run_one(gpu, trials=args.trials, epochs=args.epochs)
            print(text, flush=True)
            all_ok = all_ok and (ok or args.logical)
    if cuda or args.cpu:
        size = dict(GPU_SIZE if cuda else CPU_SIZE)
        if args.steps:
            size["steps"] = args.steps
        if args.batch:
            size["batch"] = args.batch
        ok, text, rows = packing(size, int(ray.cluster_resources().get("CPU", cpus)))
        print(text, flush=True)
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        all_ok = all_ok and ok
    elapsed = time.time() - started
    limit = TIME_LIMIT_S * (3 if not args.packing_only else 2)
    print(f"total {elapsed:.1f}s (limit {limit}s): "
          f"{'OK' if all_ok and elapsed < limit else 'FAILED'}")
    return 0 if all_ok and elapsed < limit else 1


if __name__ == "__main__":
    sys.exit(main())
