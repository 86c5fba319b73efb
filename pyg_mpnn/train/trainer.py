"""The training loop: components (data, schedule, checkpoints, tracking, profiling) wired by the
config, and one short loop over epochs and optimizer steps. See docs/training.md."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch.profiler import record_function
from tqdm import tqdm

from pyg_mpnn.data.loader import LoaderWorkerError
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.track.jacobian import JacobianProbe
from pyg_mpnn.track.layers import LayerMonitor
from pyg_mpnn.track.tracker import Tracker, is_rank_zero
from pyg_mpnn.train import checkpoint as ckpt
from pyg_mpnn.train import distributed
from pyg_mpnn.train.data import RunData
from pyg_mpnn.train.faults import BadStepGuard, FaultLog, Injector
from pyg_mpnn.train.finetune import count, freeze, load_init, model_kwargs, resolve_init
from pyg_mpnn.train.loss import Meter, batch_metrics, supervised_mask, training_loss
from pyg_mpnn.train.precision import (
    autocast,
    grad_scaler,
    peak_memory_mb,
    pick_device,
    pick_precision,
)
from pyg_mpnn.train.schedule import Schedule

PHASES = ("data_wait", "h2d", "forward", "backward", "optimizer", "tracking")
MAX_BAD_BATCHES = 20  # consecutive unreadable batches before a run gives up


def summary_line(epoch: int, step: int, seconds: float, train: Meter, valid: Meter) -> str:
    """The original's epoch line (perplexities, accuracies, 3 decimals)."""
    return (
        f"epoch: {epoch}, step: {step}, time: {seconds:.1f}, train: {train.ppl:.3f}, "
        f"valid: {valid.ppl:.3f}, train_acc: {train.acc:.3f}, valid_acc: {valid.acc:.3f}"
    )


class Trainer:
    """``Trainer(cfg, out, resume=None).fit()``; ``fit`` returns the final metrics dict."""

    def __init__(
        self,
        cfg: dict,
        out: str | Path,
        resume: str | Path | dict | None = None,
        run_name: str | None = None,
        data: RunData | None = None,
    ):
        self.cfg, self.out = cfg, Path(out)
        t = cfg["train"]
        if t.get("threads"):
            torch.set_num_threads(int(t["threads"]))
        self.device = pick_device(t["device"])
        self.precision = pick_precision(t["precision"], self.device)
        self.dist_mode, self.rank, self.world, self._owns_group = distributed.init(
            t.get("distributed", "auto"), self.device
        )
        self.progress = bool(t["progress"])
        # a loaded checkpoint (the CLI verifies it: checkpoint.newest_valid) or its path
        state = (
            resume if isinstance(resume, dict) else ckpt.load_checked(resume) if resume else None
        )
        ckpt.seed_everything(int(cfg["seed"]))
        self.data = data or RunData(
            cfg["data"], int(cfg["seed"]), rank=self.rank, world=self.world, progress=self.progress
        )
        if state is None and cfg.get("init"):
            resolve_init(cfg)  # the architecture of the init weights
        self.model = ProteinMPNN(**model_kwargs(cfg["model"]))
        if state is None and cfg.get("init"):
            load_init(self.model, cfg["init"])  # weights only: optimizer, schedule, step fresh
        self.frozen = freeze(self.model, cfg["model"].get("freeze") or [])
        self.injector = Injector(self.model, cfg.get("inject"))
        self.model = self.model.to(self.device)
        self.model.activation_checkpointing = bool(t.get("activation_checkpointing", False))
        self.net = distributed.wrap(self.model, self.dist_mode, self.device)  # what steps call
        o = cfg["optim"]
        trainable = [p for n, p in self.model.named_parameters() if n not in self.frozen]
        self.optimizer = torch.optim.Adam(
            trainable,
            lr=0.0,
            betas=tuple(o["betas"]),
            eps=float(o["eps"]),
            weight_decay=float(o["weight_decay"]),
        )
        self.schedule = Schedule(cfg["schedule"], cfg["model"]["hidden_dim"], self._total_steps())
        self.scaler = grad_scaler(self.precision, self.device)
        c = cfg["checkpoint"]
        self.checkpoints = ckpt.CheckpointManager(
            self.out, c["keep_last"], c["keep_best"], c.get("keep_every", 0)
        )
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best, self.elapsed_before, self.bad_batches = math.inf, 0.0, 0
        self.residues_seen, self.skipped_batches = 0, 0
        self._last_step_residues = 0  # residues of the last optimizer step (valid_at_residues)
        self._run_counts = "epochs"  # what the outer progress bar counts (see _run_bar)
        self.valid_history: list[dict] = []  # mid-epoch validations (step, residues, loss...)
        self.recent: list[dict] = []  # per-step metric sums of the last steps (sweep summaries)
        self.meter, self._rng = Meter(), None
        self.last_valid: tuple[int, Meter | None] = (-1, None)  # (step, result)
        self.guard = BadStepGuard(t.get("max_bad_steps"), self.out)  # non-finite steps
        if state is not None:
            self._load(state)
        tr = cfg["track"]
        self.tracker = Tracker(
            self.out,
            cfg,
            aim_repo=tr["aim_repo"],
            experiment=tr["experiment"] or cfg["name"],
            run_hash=state.get("aim_run_hash") if state else None,
            use_aim=bool(tr["aim"]),
            run_name=run_name,
            resume_step=self.step if state else None,
        )
        self.monitor = LayerMonitor(
            self.model,
            self.tracker,
            every=int(tr["layer_every"]),
            histograms=bool(tr["histograms"]),
            bins=int(tr["bins"]),
            frozen=self.frozen,
        )
        self.faults = FaultLog(self.out, self.log, self.tracker, self.tracker.enabled)
        self.jacobian = JacobianProbe(cfg.get("jacobian") or {}, self.out, self.tracker)
        self.timings = dict.fromkeys(PHASES, 0.0)
        self.step_times: list[dict] = []  # per-step phase seconds (profiling)
        self.profiler = None
        if cfg["profile"]["enabled"]:
            from pyg_mpnn.train.profile import StepProfiler

            self.profiler = StepProfiler(self.out, cfg["profile"], self.device, self.tracker)
        self._t_start = time.time()
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train, n_frozen = count(self.model, self.frozen)
        self.tracker.set(
            "model",
            {"parameters": n_params, "trainable": n_train, "frozen": n_frozen, **self.model.config},
        )
        self.log(
            f"{cfg['name']}: {n_params:,} parameters ({n_train:,} trainable, {n_frozen:,} "
            f"frozen{': ' + ', '.join(cfg['model']['freeze']) if n_frozen else ''}), "
            f"device {self.device}, precision {self.precision}, run folder {self.out}"
        )
        if cfg.get("init"):
            where = f"step {state['step']}" if isinstance(resume, dict) else resume
            start = f"resumed from {where}" if state else f"init {cfg['init']}"
            self.log(f"weights: {start}")
        self.log(self.data.describe())

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        model_sd, optim_sd = distributed.state_dicts(self.model, self.optimizer, self.dist_mode)
        return {
            "model": model_sd,
            "config": dict(self.model.config),
            "train_config": self.cfg,
            "optimizer": optim_sd,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "sampler": self.data.sampler.state_dict(consumed=self.batch_in_epoch),
            "rng": ckpt.rng_state(),
            "meters": self.meter.state_dict(),
            "best": self.best,
            "aim_run_hash": self.tracker.hash,
            "elapsed": self.elapsed(),
            "residues_seen": self.residues_seen,
            "faults": self.guard.state_dict(),
        }

    def _load(self, s: dict) -> None:
        distributed.load_state_dicts(
            self.model, self.optimizer, s["model"], s["optimizer"], self.dist_mode
        )
        self.scaler.load_state_dict(s["scaler"])
        self.step, self.epoch, self.batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        self.data.sampler.load_state_dict(s["sampler"])
        self.meter, self.best = Meter(s["meters"]), s["best"]
        self.elapsed_before = s.get("elapsed", 0.0)
        self.residues_seen = s.get("residues_seen", 0)
        self.guard.load_state_dict(s.get("faults"))
        ckpt.set_rng_state(s["rng"])

    def _total_steps(self) -> int:
        """Optimizer steps of the whole run: ``train.max_steps``, else epochs x steps per epoch."""
        t = self.cfg["train"]
        if t["max_steps"] is not None:
            return int(t["max_steps"])
        per_epoch = math.ceil(len(self.data.sampler) / int(self.cfg["optim"]["accumulate"]))
        return int(t["epochs"]) * per_epoch

    def save(self, is_best: bool = False) -> Path | None:
        """Checkpoint now (rank 0 only: every rank holds the same weights)."""
        state = self.state_dict() if self.dist_mode == "fsdp" else None  # gathers: all ranks
        if not is_rank_zero():
            return None
        self.tracker.flush()
        return self.checkpoints.save(state or self.state_dict(), self.step, is_best)

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self._t_start

    def log(self, msg: str) -> None:
        if self.tracker.enabled:
            tqdm.write(msg, file=sys.stderr)

    # -- loop ----------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        t = self.cfg["train"]
        if t["max_steps"] is not None and self.step >= int(t["max_steps"]):
            return True
        if t["max_minutes"] is not None and distributed.agree(
            self.elapsed() >= 60 * float(t["max_minutes"]), self.world
        ):
            return True
        if t["max_residues"] is not None and self.residues_seen >= int(t["max_residues"]):
            return True
        return self.profiler is not None and self.profiler.done(self.step)

    def fit(self) -> dict:
        epochs, result = int(self.cfg["train"]["epochs"]), {}
        bar = self._run_bar(epochs)
        if self.profiler is not None:
            self.profiler.start()
        elif self.step == 0 and self.cfg.get("init") and self.cfg["train"]["valid_every_steps"]:
            self.step_validation()  # where the fine-tune starts from
        try:
            while self.epoch < epochs and not self.should_stop():
                t0 = time.time()
                complete = self.train_epoch(bar)
                if self.profiler is not None:  # profiling runs epochs until its window is done
                    if self.profiler.done(self.step):
                        self.profiler.finish(self)
                        self.save()
                        break
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    epochs = max(epochs, self.epoch + 1)
                    continue
                valid = self.last_valid[1] if self.last_valid[0] == self.step else self.validate()
                is_best = valid.loss < self.best
                self.best = min(self.best, valid.loss)
                line = summary_line(self.epoch + 1, self.step, time.time() - t0, self.meter, valid)
                self.log(line if complete else line + " (partial epoch)")
                with open(self.out / "log.txt", "a") as f:
                    f.write(line + ("\n" if complete else " (partial epoch)\n"))
                result = self._epoch_metrics(valid)
                self.tracker.track_many(
                    {"loss": valid.loss, "ppl": valid.ppl, "accuracy": valid.acc},
                    self.step,
                    subset="valid",
                )
                self.tracker.track_many(
                    {
                        "epoch_loss": self.meter.loss,
                        "epoch_ppl": self.meter.ppl,
                        "epoch_accuracy": self.meter.acc,
                    },
                    self.step,
                    subset="train",
                )
                if complete:
                    self.epoch, self.batch_in_epoch, self.meter = self.epoch + 1, 0, Meter()
                    self.tracker.epoch = self.epoch
                    if self._run_counts == "epochs":
                        bar.update(1)
                self.save(is_best)
                self.tracker.flush()
        finally:
            bar.close()
            self.tracker.set("final", result)
            self.tracker.close()
            self.monitor.remove()
            distributed.cleanup(self._owns_group)
        return result

    def _run_bar(self, epochs: int) -> tqdm:
        """The outer progress bar, counted in what really ends the run (so its ETA is real):
        residues when ``train.max_residues`` is set, else steps for ``max_steps``, else epochs
        (``self._run_counts`` says which)."""
        t, off = self.cfg["train"], not (self.progress and self.tracker.enabled)
        if t["max_residues"] is not None:
            self._run_counts = "residues"
            return tqdm(
                total=int(t["max_residues"]),
                initial=min(self.residues_seen, int(t["max_residues"])),
                desc="residues",
                unit="res",
                unit_scale=True,
                position=0,
                disable=off,
            )
        if t["max_steps"] is not None:
            self._run_counts = "steps"
            return tqdm(
                total=int(t["max_steps"]),
                initial=self.step,
                desc="steps",
                unit="step",
                position=0,
                disable=off,
            )
        self._run_counts = "epochs"
        return tqdm(
            total=epochs, initial=self.epoch, desc="epochs", unit="epoch", position=0, disable=off
        )

    def _maybe_validate(self) -> None:
        """Validate mid-epoch every ``train.valid_every_steps`` steps and once each time the
        residues seen cross a value of ``train.valid_at_residues`` (a sweep's FLOP budgets);
        each such result is appended to ``self.valid_history``."""
        t = self.cfg["train"]
        every = t["valid_every_steps"]
        marks = [int(r) for r in (t.get("valid_at_residues") or [])]
        crossed = [
            r
            for r in marks
            if self.residues_seen - self._last_step_residues < r <= self.residues_seen
        ]
        if (every and self.step % int(every) == 0) or crossed:
            self.step_validation()

    def _epoch_metrics(self, valid: Meter) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "train_loss": self.meter.loss,
            "train_ppl": self.meter.ppl,
            "train_acc": self.meter.acc,
            "valid_loss": valid.loss,
            "valid_ppl": valid.ppl,
            "valid_acc": valid.acc,
            "best_valid_loss": min(self.best, valid.loss),
        }

    def _next_batch(self, it):
        """The next batch, or None at the end of the epoch; unreadable batches are skipped."""
        while True:
            try:
                batch = next(it)
                self.bad_batches = 0
                self.faults.poll(self.data.train_loader, self.step)
                return batch
            except StopIteration:
                self.faults.poll(self.data.train_loader, self.step)
                return None
            except LoaderWorkerError:  # workers died more often than the loader restarts them
                raise
            except Exception as e:
                self.bad_batches += 1
                self.skipped_batches += 1
                self.batch_in_epoch += 1
                self.log(f"warning: skipped an unreadable batch ({type(e).__name__}: {e})")
                self.tracker.track(1.0, "skipped_batch", self.step, subset="train")
                if self.bad_batches >= MAX_BAD_BATCHES:
                    raise RuntimeError(f"{MAX_BAD_BATCHES} unreadable batches in a row") from e

    def train_epoch(self, run_bar: tqdm | None = None) -> bool:
        """Train until the epoch ends (True) or a stop condition holds (False)."""
        sampler = self.data.sampler
        sampler.set_epoch(self.epoch)
        sampler.load_state_dict(
            {"epoch": self.epoch, "consumed": self.batch_in_epoch, "seed": sampler.seed}
        )
        total = len(sampler)
        it = iter(self.data.train_loader)
        self.model.train()
        accumulate = int(self.cfg["optim"]["accumulate"])
        save_every = self.cfg["checkpoint"]["every_steps"]
        bar = tqdm(
            total=total,
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}",
            unit="batch",
            leave=False,
            position=1,
            disable=not (self.progress and self.tracker.enabled),
        )
        try:
            while not self.should_stop():
                t0 = time.perf_counter()
                with record_function("data_wait"):
                    micro = []
                    while len(micro) < accumulate and (b := self._next_batch(it)) is not None:
                        micro.append(b)
                if not micro:
                    return True
                wait = time.perf_counter() - t0
                stats = self.train_step(micro, wait)
                self.batch_in_epoch += len(micro)
                bar.update(len(micro))
                if run_bar is not None and self._run_counts == "residues":
                    run_bar.update(min(self.residues_seen, run_bar.total) - run_bar.n)
                elif run_bar is not None and self._run_counts == "steps":
                    run_bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2e}")
                if self.profiler is not None:
                    self.profiler.step()
                if save_every and self.step % int(save_every) == 0:
                    self.save()
                self._maybe_validate()
            return False
        finally:
            bar.close()

    def step_validation(self) -> None:
        """Validate between epochs (``train.valid_every_steps``, and at step 0 of a fine-tune:
        the start point's loss); a new best is checkpointed as ``best.pt`` at once."""
        v = self.validate()
        self.last_valid = (self.step, v)  # an epoch ending at this step reuses it
        self.tracker.track_many(
            {"loss": v.loss, "ppl": v.ppl, "accuracy": v.acc}, self.step, subset="valid"
        )
        self.valid_history.append(
            {
                "step": self.step,
                "residues": self.residues_seen,
                "valid_loss": v.loss,
                "valid_ppl": v.ppl,
                "valid_acc": v.acc,
                "wall_s": self.elapsed(),
            }
        )
        self.log(f"step {self.step}: valid ppl {v.ppl:.3f}, valid acc {v.acc:.3f}")
        if v.loss < self.best:
            self.best = v.loss
            self.save(is_best=True)

    def train_step(self, micro: list, data_wait: float) -> dict:
        """One optimizer step over ``micro`` (the accumulated micro-batches)."""
        sync = self.profiler is not None and self.device.type == "cuda"
        ph = dict.fromkeys(PHASES, 0.0)
        ph["data_wait"] = data_wait
        t_step = time.perf_counter() - data_wait
        step = self.step + 1
        layers = self.monitor.due(step) and self.tracker.enabled
        self.injector.step = step
        lr = self.schedule.apply(self.optimizer, step)
        self.optimizer.zero_grad(set_to_none=True)
        lo, n = self.cfg["loss"], len(micro)
        loss_sum = res = edges = 0.0
        step_meter = Meter()

        def tick(name, t):
            if sync:
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            ph[name] += now - t
            return now

        for i, batch in enumerate(micro):
            t = time.perf_counter()
            with record_function("h2d"):
                batch = batch.to(self.device, non_blocking=True)
            t = tick("h2d", t)
            self.monitor.arm(layers and i == n - 1)
            with record_function("forward"), autocast(self.precision, self.device):
                log_probs = self.net(batch)
                loss_mask = supervised_mask(batch)
                loss = training_loss(
                    log_probs,
                    batch.seq,
                    loss_mask,
                    lo["label_smoothing"],
                    lo["normalize"],
                    lo["tokens"],
                )
                if lo["normalize"] == "mean":
                    loss = loss / n
            t = tick("forward", t)
            with record_function("backward"):
                self.scaler.scale(loss).backward()
            t = tick("backward", t)
            m = batch_metrics(log_probs.detach(), batch.seq, loss_mask)
            step_meter.add(m)
            loss_sum += float(loss.detach()) * (n if lo["normalize"] == "mean" else 1)
            res += batch.num_nodes
            edges += self.monitor.last_edges
        t = time.perf_counter()
        with record_function("optimizer"):
            self.scaler.unscale_(self.optimizer)
            clip = float(self.cfg["optim"]["grad_clip"])
            gnorm = float(
                torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), clip if clip > 0 else math.inf
                )
            )
        t = tick("optimizer", t)
        if layers:
            with record_function("tracking"):
                self.monitor.capture(step)
            t = tick("tracking", t)
        with record_function("optimizer"):
            bad = self.guard.check(step, loss_sum, gnorm, self.precision)  # raises after K
            if not bad or self.precision == "fp16":  # the scaler skips non-finite steps itself
                self.scaler.step(self.optimizer)
            self.scaler.update()
        t = tick("optimizer", t)
        if bad:
            self.faults.event(
                "bad_step",
                step,
                (
                    f"step {step}: non-finite loss ({loss_sum}) or gradient norm ({gnorm}); update "
                    f"skipped ({self.guard.in_a_row} in a row, train.max_bad_steps="
                    f"{self.guard.max_bad})"
                ),
            )
        self.step = step
        self.residues_seen += int(res)
        self._last_step_residues = int(res)
        if not bad:  # a skipped step stays out of the epoch's metrics (its loss is still tracked)
            self.meter.add(step_meter.state_dict())
            self.recent.append(step_meter.state_dict())
            del self.recent[:-200]
        wall = time.perf_counter() - t_step
        stats = {"loss": step_meter.loss, "lr": lr}
        every = max(int(self.cfg["track"]["log_every"]), 1)
        if self.tracker.enabled and (step % every == 0 or step == 1):
            t0 = time.perf_counter()
            norm = lo["tokens"] if lo["normalize"] == "constant" else step_meter.count
            self.tracker.track_many(
                {
                    "loss_smoothed": loss_sum * norm / max(step_meter.count, 1.0),
                    "loss": step_meter.loss,
                    "ppl": step_meter.ppl,
                    "accuracy": step_meter.acc,
                },
                step,
                subset="train",
            )
            self.tracker.track_many(
                {
                    "lr": lr,
                    "grad_norm": gnorm,
                    "residues_per_s": res / wall,
                    "edges_per_s": edges / wall,
                    "data_wait_frac": data_wait / wall,
                    "step_time_s": wall,
                    "peak_memory_mb": peak_memory_mb(self.device),
                },
                step,
            )
            ph["tracking"] += time.perf_counter() - t0
        if layers:
            t0 = time.perf_counter()
            self.monitor.after_step(step)
            ph["tracking"] += time.perf_counter() - t0
        if self.jacobian.due(step) and self.tracker.enabled:
            t0 = time.perf_counter()
            self.jacobian.run(self.model, step)
            ph["tracking"] += time.perf_counter() - t0
        for k, v in ph.items():
            self.timings[k] += v
        ph.update(step=step, residues=res, edges=edges, total=time.perf_counter() - t_step)
        self.step_times.append(ph)
        if len(self.step_times) > 1000:
            del self.step_times[:500]
        return stats

    @torch.no_grad()
    def validate(self) -> Meter:
        """Held-out loss with a fixed noise/decoding-order seed (comparable across epochs; the
        training RNG stream is left untouched)."""
        meter = Meter()
        self.model.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.cfg["seed"]) + 1)
            for batch in tqdm(
                self.data.valid_loader,
                desc="valid",
                unit="batch",
                leave=False,
                disable=not (self.progress and self.tracker.enabled),
                position=1,
            ):
                batch = batch.to(self.device)
                with autocast(self.precision, self.device):
                    log_probs = self.model(batch)
                meter.add(batch_metrics(log_probs, batch.seq, supervised_mask(batch)))
        self.faults.poll(self.data.valid_loader, self.step, "valid")
        self.model.train()
        return Meter(distributed.all_reduce_sums(meter.state_dict(), self.world))
