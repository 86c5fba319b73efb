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

from pyg_mpnn import allocator
from pyg_mpnn.data.loader import LoaderWorkerError
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.modes import Modes
from pyg_mpnn.track.jacobian import JacobianProbe
from pyg_mpnn.track.layers import LayerMonitor
from pyg_mpnn.track.tracker import Tracker, is_rank_zero
from pyg_mpnn.train import auto, distributed
from pyg_mpnn.train import checkpoint as ckpt
from pyg_mpnn.train.compiled import Compiled, can_compile, inductor_works
from pyg_mpnn.train.config import Config
from pyg_mpnn.train.data import RunData
from pyg_mpnn.train.faults import BadStepGuard, DeferredChecks, FaultLog, Injector
from pyg_mpnn.train.finetune import count, freeze, load_init
from pyg_mpnn.train.loss import Meter, TrainingLoss
from pyg_mpnn.train.precision import grad_scaler, pick_device, pick_precision
from pyg_mpnn.train.profile import PhaseTimer, StepProfiler
from pyg_mpnn.train.progress import RunBar
from pyg_mpnn.train.schedule import Schedule
from pyg_mpnn.train.setup import RunStart, prepare
from pyg_mpnn.train.step import OptimizerStep
from pyg_mpnn.train.validation import epoch_metrics, summary_line, validate

MAX_BAD_BATCHES = 20  # consecutive unreadable batches before a run gives up


class Trainer(OptimizerStep):
    """``Trainer(cfg, out).fit()``; ``fit`` returns the final metrics dict.

    Args:
        cfg (Config or RunStart): the experiment (:func:`pyg_mpnn.train.config.load_experiment`),
            a fresh run, or a :class:`~pyg_mpnn.train.setup.RunStart`: the finished config and
            the checkpoint state to resume from (the CLI's :func:`~pyg_mpnn.train.setup.prepare`).
        out (str or Path): the run folder.
        run_name (str, optional): the Aim run's name (a sweep's size or point).
        data (RunData, optional): the data to use instead of building it from ``cfg.data``.
        quiet (bool, optional): track, log and print nothing (a sweep's size timing).
            (default: :obj:`False`)

    Subclasses extend the loop through its public hooks: :meth:`should_stop`,
    :meth:`should_validate` and :meth:`on_step`.
    """

    def __init__(
        self,
        cfg: Config | RunStart,
        out: str | Path,
        run_name: str | None = None,
        data: RunData | None = None,
        quiet: bool = False,
    ):
        start = cfg if isinstance(cfg, RunStart) else prepare(cfg)
        cfg, state = start.cfg, start.state
        self.cfg, self.out, self.quiet = cfg, Path(out), quiet
        t = cfg.train
        self.device = pick_device(t.device)
        threads, choice = auto.resolve_threads(t.threads, self._facts)
        self.auto_choices = [choice] if choice else []  # train.* auto settings resolved
        if threads:
            torch.set_num_threads(threads)
        self.precision = pick_precision(t.precision, self.device)
        self.dist_mode, self.rank, self.world, self._owns_group = distributed.init(
            t.distributed, self.device
        )
        self.progress = t.progress
        ckpt.seed_everything(cfg.seed)
        self.data = data or RunData(
            cfg.data,
            cfg.seed,
            rank=self.rank,
            world=self.world,
            progress=self.progress,
            backbone=cfg.model.backbone,
            pin_memory=self.device.type == "cuda",
        )
        self._build_model(fresh=state is None)
        self._build_optimizer()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best, self.elapsed_before, self.bad_batches = math.inf, 0.0, 0
        self.residues_seen, self.skipped_batches = 0, 0
        self._last_step_residues = 0  # residues of the last optimizer step (valid_at_residues)
        self.release_memory = allocator.Releaser(t.release_memory_every)  # free pages back
        self.valid_history: list[dict] = []  # mid-epoch validations (step, residues, loss...)
        self.recent: list[dict] = []  # per-step metric sums of the last steps (sweep summaries)
        self.meter = Meter()
        self.last_valid: tuple[int, Meter | None] = (-1, None)  # (step, result)
        self.guard = BadStepGuard(t.max_bad_steps, self.out)  # non-finite steps
        if state is not None:
            self._load(state)
        self._build_tracking(state, run_name)
        self._announce(state)

    def _build_model(self, fresh: bool) -> None:
        """The model (from ``init`` weights when a fresh run has them) in the config's
        :class:`~pyg_mpnn.nn.modes.Modes`, frozen parameters, injected faults, and
        ``self.net``: what the steps call (wrapped for DDP/FSDP, compiled with
        ``train.compile``)."""
        cfg = self.cfg
        self.model = ProteinMPNN(**cfg.model.kwargs(), modes=self._modes())
        if fresh and cfg.init:
            load_init(self.model, cfg.init)  # weights only: optimizer, schedule, step fresh
        self.frozen = freeze(self.model, cfg.model.freeze)
        self.injector = Injector(self.model, cfg.inject)  # controlled faults
        self.model = self.model.to(self.device)
        self.net = distributed.wrap(self.model, self.dist_mode, self.device)
        self.net = Compiled(self.net) if self.compiled else self.net
        self.loss = TrainingLoss(cfg.loss)

    def _modes(self) -> Modes:
        """The model's modes from ``train.*``, its ``auto`` settings resolved. Compiled, the
        model does not recompute activations itself: inductor's partitioner chooses what to
        recompute in backward."""
        t = self.cfg.train
        recompute, compiled, choices = auto.resolve_model(
            self.cfg,
            self.precision,
            self._total_steps(),
            self._facts,
            lambda: inductor_works(self.device),
        )
        self.auto_choices += choices
        self.compiled = can_compile(compiled, self.device)
        return Modes(
            activation_checkpointing=t.activation_checkpointing,
            recompute_activations=recompute and not self.compiled,
            shape_buckets=t.shape_buckets,
            aggregation=t.aggregation,
        )

    def _facts(self) -> auto.Facts:
        """This machine's facts for the ``auto`` settings (read once)."""
        if getattr(self, "_machine_facts", None) is None:
            self._machine_facts = auto.machine_facts(self.device)
        return self._machine_facts

    def _build_optimizer(self) -> None:
        """Adam over the trainable parameters, the schedule, the grad scaler, checkpoints."""
        o, c = self.cfg.optim, self.cfg.checkpoint
        trainable = [p for n, p in self.model.named_parameters() if n not in self.frozen]
        self.optimizer = torch.optim.Adam(
            trainable,
            lr=0.0,
            betas=tuple(o.betas),
            eps=o.eps,
            weight_decay=o.weight_decay,
            fused=self.dist_mode != "fsdp",  # skips a bad step on the device (step_unless)
        )
        self.schedule = Schedule(self.cfg.schedule, self.cfg.model.hidden_dim, self._total_steps())
        self.scaler = grad_scaler(self.precision, self.device)
        self.checkpoints = ckpt.CheckpointManager(self.out, c.keep_last, c.keep_best, c.keep_every)

    def _build_tracking(self, state: dict | None, run_name: str | None) -> None:
        """Aim + metrics.csv, the per-layer monitor, the fault log, the Jacobian probe, the
        phase timer and (``--profile``) the profiler."""
        cfg, tr = self.cfg, self.cfg.track
        self.tracker = Tracker(
            self.out,
            cfg.to_dict(),
            aim_repo=tr.aim_repo,
            experiment=tr.experiment or cfg.name,
            run_hash=state.get("aim_run_hash") if state else None,
            use_aim=tr.aim,
            enabled=False if self.quiet else None,
            run_name=run_name,
            resume_step=self.step if state else None,
        )
        self.monitor = LayerMonitor(
            self.model,
            self.tracker,
            every=tr.layer_every,
            histograms=tr.histograms,
            bins=tr.bins,
            frozen=self.frozen,
        )
        self.faults = FaultLog(self.out, self.log, self.tracker, self.tracker.enabled)
        self.checks = DeferredChecks(self.guard, self.faults.event, self.precision)
        self.jacobian = JacobianProbe(cfg.jacobian, self.out, self.tracker)
        self.profiler = None
        if cfg.profile.enabled:
            self.profiler = StepProfiler(self.out, cfg.profile, self.device, self.tracker)
        self.timer = PhaseTimer(
            self.device, sync=self.profiler is not None and self.device.type == "cuda"
        )
        self.step_times = self.timer.history  # per-step phase seconds (profiling, sweeps)
        self._t_start = time.time()

    def _announce(self, state: dict | None) -> None:
        """The run's first lines: parameters, device, precision, where the weights come from."""
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train, n_frozen = count(self.model, self.frozen)
        self.tracker.set(
            "model",
            {"parameters": n_params, "trainable": n_train, "frozen": n_frozen, **self.model.config},
        )
        self.log(
            f"{cfg.name}: {n_params:,} parameters ({n_train:,} trainable, {n_frozen:,} "
            f"frozen{': ' + ', '.join(cfg.model.freeze) if n_frozen else ''}), "
            f"device {self.device}, precision {self.precision}, run folder {self.out}"
        )
        if cfg.init:
            start = f"resumed from step {state['step']}" if state else f"init {cfg.init}"
            self.log(f"weights: {start}")
        self.log(self.data.describe())
        self.log(allocator.describe())
        for choice in self.auto_choices:
            self.log(choice.line())
        self.tracker.set(
            "auto", {c.key: {"value": c.value, "reason": c.reason} for c in self.auto_choices}
        )

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        self.checks.flush()  # the guard's count includes every step taken
        model_sd, optim_sd = distributed.state_dicts(self.model, self.optimizer, self.dist_mode)
        return {
            "model": model_sd,
            "config": dict(self.model.config),
            "train_config": self.cfg.to_dict(),
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
        t = self.cfg.train
        if t.max_steps is not None:
            return t.max_steps
        return t.epochs * math.ceil(len(self.data.sampler) / self.cfg.optim.accumulate)

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

    # -- loop and its hooks ------------------------------------------------------------------------
    def should_stop(self) -> bool:
        """Hook: whether to stop before the next step (``train.max_steps``, ``max_minutes``,
        ``max_residues``, the profiler's window)."""
        t = self.cfg.train
        if t.max_steps is not None and self.step >= t.max_steps:
            return True
        if t.max_minutes is not None and distributed.agree(
            self.elapsed() >= 60 * t.max_minutes, self.world
        ):
            return True
        if t.max_residues is not None and self.residues_seen >= t.max_residues:
            return True
        return self.profiler is not None and self.profiler.done(self.step)

    def fit(self) -> dict:
        epochs, result = self.cfg.train.epochs, {}
        off = not (self.progress and self.tracker.enabled)
        bar = RunBar(self.cfg.train, self.epoch, self.step, self.residues_seen, disable=off)
        if self.profiler is not None:
            self.profiler.start()
        elif self.step == 0 and self.cfg.init and self.cfg.train.valid_every_steps:
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
                result = self._end_epoch(complete, time.time() - t0, bar)
        finally:
            bar.close()
            self.tracker.set("final", result)
            self.close()
        return result

    def close(self) -> None:
        """Close the tracker, remove the monitor's hooks, leave the process group (``fit``
        does at its end; a caller that only steps does it itself)."""
        self.tracker.close()
        self.monitor.remove()
        distributed.cleanup(self._owns_group)

    def _end_epoch(self, complete: bool, seconds: float, bar: RunBar) -> dict:
        """Validate (unless this step just did), report, checkpoint; the epoch's metrics.
        ``complete``: the epoch ran to its end (not stopped by a limit)."""
        self.checks.flush()
        valid = self.last_valid[1] if self.last_valid[0] == self.step else self.validate()
        is_best = valid.loss < self.best
        self.best = min(self.best, valid.loss)
        line = summary_line(self.epoch + 1, self.step, seconds, self.meter, valid)
        line += "" if complete else " (partial epoch)"
        self.log(line)
        with open(self.out / "log.txt", "a") as f:
            f.write(line + "\n")
        result = epoch_metrics(self.step, self.epoch, self.meter, valid, self.best)
        self.tracker.track_many(valid.scalars(), self.step, subset="valid")
        self.tracker.track_many(self.meter.scalars("epoch_"), self.step, subset="train")
        if complete:
            self.epoch, self.batch_in_epoch, self.meter = self.epoch + 1, 0, Meter()
            self.tracker.epoch = self.epoch
            bar.epoch_done()
        self.save(is_best)
        self.tracker.flush()
        self.release_memory(self.step)
        return result

    def should_validate(self) -> bool:
        """Hook: whether to validate after this step (:meth:`step_validation`): every
        ``train.valid_every_steps`` steps and once each time the residues seen cross a value
        of ``train.valid_at_residues`` (a sweep's FLOP budgets)."""
        t = self.cfg.train
        before = self.residues_seen - self._last_step_residues
        crossed = [r for r in t.valid_at_residues or [] if before < r <= self.residues_seen]
        return bool(t.valid_every_steps and self.step % t.valid_every_steps == 0) or bool(crossed)

    def on_step(self, micro: list) -> None:
        """Hook: called after every optimizer step (its checkpoint and validation done) with
        the step's micro-batches; does nothing here."""

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

    def train_epoch(self, run_bar: RunBar | None = None) -> bool:
        """Train until the epoch ends (True) or a stop condition holds (False)."""
        sampler = self.data.sampler
        sampler.set_epoch(self.epoch)
        sampler.load_state_dict(
            {"epoch": self.epoch, "consumed": self.batch_in_epoch, "seed": sampler.seed}
        )
        it = iter(self.data.train_loader)
        self.model.train()
        accumulate, save_every = self.cfg.optim.accumulate, self.cfg.checkpoint.every_steps
        bar = tqdm(
            total=len(sampler),
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
                stats = self.train_step(micro, time.perf_counter() - t0)
                self.batch_in_epoch += len(micro)
                bar.update(len(micro))
                if run_bar is not None:
                    run_bar.stepped(self.residues_seen)
                if stats["loss"] is not None:  # read on logging steps only
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2e}")
                if self.profiler is not None:
                    self.profiler.step()
                if save_every and self.step % save_every == 0:
                    self.save()
                validated = self.should_validate()
                if validated:
                    self.step_validation()
                self.release_memory(self.step, validated)
                self.on_step(micro)
            return False
        finally:
            bar.close()

    def step_validation(self) -> None:
        """Validate between epochs (``train.valid_every_steps``, and at step 0 of a fine-tune:
        the start point's loss); a new best is checkpointed as ``best.pt`` at once."""
        v = self.validate()
        self.last_valid = (self.step, v)  # an epoch ending at this step reuses it
        self.tracker.track_many(v.scalars(), self.step, subset="valid")
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

    # -- one optimizer step --------------------------------------------------------------------
    def train_step(self, micro: list, data_wait: float) -> dict:
        """One optimizer step over ``micro`` (the accumulated micro-batches, which took
        ``data_wait`` seconds to arrive); returns the step's ``loss`` (on logging steps, else
        None: between them a step reads nothing from the device) and ``lr``."""
        self.timer.start(data_wait)
        step = self.step + 1
        layers = self.monitor.due(step) and self.tracker.enabled  # per-layer capture
        self.injector.step = step
        lr = self.schedule.apply(self.optimizer, step)
        self.optimizer.zero_grad(set_to_none=True)
        sums = self._forward_backward(micro, capture_last=layers)
        gnorm = self._clip_gradients()
        if layers:
            with self.timer("tracking"):
                self.monitor.capture(step)
        bad = self._optimizer_step(step, sums.loss, gnorm)
        self.step = step
        self.residues_seen += sums.residues
        self._last_step_residues = sums.residues
        if bad is not True:  # a skipped step stays out of the epoch's metrics (not its tracking)
            kept = Meter()
            kept.add(sums.meter, keep=None if bad is False else ~bad)
            self.meter.add(kept)
            self.recent.append(kept)
            del self.recent[:-200]
        logged = self._log_step(step, lr, gnorm, sums, layers)
        self.timer.finish(step=step, residues=sums.residues, edges=sums.edges)
        return {"loss": sums.meter.loss if logged else None, "lr": lr}

    def validate(self) -> Meter:
        """Held-out loss and accuracy (:func:`pyg_mpnn.train.validation.validate`)."""
        loader, progress = self.data.valid_loader, self.progress and self.tracker.enabled
        args = (self.device, self.precision, self.cfg.seed + 1, self.world, progress)
        meter = validate(self.model, loader, *args)
        self.faults.poll(loader, self.step, "valid")
        return meter
