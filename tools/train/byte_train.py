"""The training loop both byte models share: AdamW, linear warm-up then cosine decay over all phases, a loss curve
logged every `log_every` steps, fixed seeds."""
import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Phase:
    steps: int
    batch: int
    context: int


def train(model: torch.nn.Module, phases: list[Phase], loss_fn: Callable[[torch.nn.Module, int, int, torch.Generator], torch.Tensor],
          lr: float, seed: int, log_every: int, log) -> list[dict]:
    """Runs every phase in order; returns the loss curve [{step, context, loss, seconds}]."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    total = sum(p.steps for p in phases)
    warmup = max(1, total // 20)
    curve, step, t0, running = [], 0, time.time(), []
    for phase in phases:
        for _ in range(phase.steps):
            scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            for g in opt.param_groups:
                g['lr'] = lr * max(scale, 0.02)
            model.train()
            loss = loss_fn(model, phase.batch, phase.context, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running.append(loss.item())
            step += 1
            if step % log_every == 0 or step == total:
                row = {'step': step, 'context': phase.context, 'loss': sum(running) / len(running), 'seconds': round(time.time() - t0, 1)}
                running = []
                curve.append(row)
                log(json.dumps(row))
    return curve


def export_onnx(model: torch.nn.Module, path: str, example_len: int) -> None:
    """ONNX opset 17 with dynamic batch and sequence axes: input_ids [batch, seq] int64 -> logits [batch, seq, 256]."""
    model.eval()
    example = torch.zeros(1, example_len, dtype=torch.int64)
    torch.onnx.export(model, (example,), path, input_names=['input_ids'], output_names=['logits'], opset_version=17,
                      dynamic_axes={'input_ids': {0: 'batch', 1: 'seq'}, 'logits': {0: 'batch', 1: 'seq'}},
                      do_constant_folding=True)


@dataclass
class TimedPhase:
    """A phase that runs for `fraction` of the wall-clock budget."""
    fraction: float
    batch: int
    context: int


def train_timed(model: torch.nn.Module, phases: list[TimedPhase],
                loss_fn: Callable[[torch.nn.Module, int, int, torch.Generator], torch.Tensor],
                lr: float, seed: int, max_seconds: float, log_every: int, log, checkpoint=None) -> tuple[list[dict], list[int]]:
    """Trains until `max_seconds` of wall clock have passed. The schedule runs on the elapsed fraction of that budget:
    the phase whose cumulative fraction covers it, and a 3% linear warm-up then cosine decay of the learning rate,
    so the run ends at the schedule's tail whatever the machine's speed. Returns (loss curve, steps taken per phase);
    `checkpoint(step)` is called at every logged step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    bounds = [sum(p.fraction for p in phases[:k + 1]) for k in range(len(phases))]
    steps_per_phase = [0] * len(phases)
    curve, step, t0, running = [], 0, time.time(), []
    while True:
        progress = (time.time() - t0) / max_seconds
        if progress >= 1:
            break
        k = next((i for i, b in enumerate(bounds) if progress < b), len(phases) - 1)
        phase = phases[k]
        scale = progress / 0.03 if progress < 0.03 else 0.5 * (1 + math.cos(math.pi * (progress - 0.03) / 0.97))
        for g in opt.param_groups:
            g['lr'] = lr * max(scale, 0.02)
        model.train()
        loss = loss_fn(model, phase.batch, phase.context, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        step += 1
        steps_per_phase[k] += 1
        if step % log_every == 0:
            row = {'step': step, 'context': phase.context, 'loss': sum(running) / len(running), 'seconds': round(time.time() - t0, 1)}
            running = []
            curve.append(row)
            log(json.dumps(row))
            if checkpoint:
                checkpoint(step)
    if running:
        curve.append({'step': step, 'context': phase.context, 'loss': sum(running) / len(running), 'seconds': round(time.time() - t0, 1)})
        log(json.dumps(curve[-1]))
    return curve, steps_per_phase
