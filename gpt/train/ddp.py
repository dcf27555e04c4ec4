"""Data parallelism over MPI: N processes train one model, each on its share of every batch.

    mpiexec -n 2 gpt train --batch-size 6     # 2 ranks x 6 sequences = one global batch of 12

    ddp = connect(timeout=300)                # SINGLE in a plain run: mpi4py is never imported
    x, y = ddp.shard(global_batch)            # this rank's rows
    total = ddp.sum(local_tokens)             # a number added up over ranks
    ddp.reduce_gradients()                    # flat.grad summed over ranks, in buckets

The recipe is Horovod's and PyTorch DDP's. Every rank holds the whole model, built
from the same seed (checked by digest, not assumed); every rank draws the same global
batch from the same seeded sampler and keeps its slice, so N ranks with batch B see
exactly what one process with batch N*B sees. Each rank weights its micro-batches'
mean losses by their share of the step's counted tokens over all ranks (step.py), so
the SUM of the ranks' gradients is the gradient of the global batch: one Allreduce
(in place, in buckets of BUCKET_BYTES so MPI's scratch space stays bounded), then
every rank clips by the same global norm and takes the same AdamW step. The reduce
starts after the last backward of a step; it does not overlap the backward pass.

Every collective runs under a watchdog: a rank that waits longer than `timeout` for
the others (one died, hangs or was stopped) prints why and calls MPI_Abort, which
ends every rank. An unexpected error on one rank does the same at once; errors every
rank reaches together (a NaN loss, an agreed Ctrl-C, a bad config) end each rank
normally.
"""
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
import traceback

import numpy as np

import minigrad

from gpt.errors import ConfigError, DistributedError, NonFiniteLossError

BUCKET_BYTES = 25 << 20  # gradient bytes per Allreduce call (PyTorch DDP's default bucket)

# (world size, rank) variables that launchers export: MPICH's hydra (and Intel MPI, srun
# with PMI-2), Open MPI's mpirun, MVAPICH, Slurm's srun.
LAUNCHER_VARS = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                 ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"), ("SLURM_NTASKS", "SLURM_PROCID"))


def launched_world_size(environ=None):
    """The number of processes a launcher started, from its environment (1 when none did).

    Example: launched_world_size({"PMI_SIZE": "4", "PMI_RANK": "2"}) == 4
    """
    environ = os.environ if environ is None else environ
    for size, rank in LAUNCHER_VARS:
        if size in environ and rank in environ:
            return int(environ[size])
    mpi = sys.modules.get("mpi4py.MPI")  # a script that initialised MPI itself
    return mpi.COMM_WORLD.Get_size() if mpi is not None and mpi.Is_initialized() else 1


def connect(timeout=300.0):
    """SINGLE for one process; an MPIRanks over MPI_COMM_WORLD when a launcher started several
    (created once per process: MPI is initialised once)."""
    if launched_world_size() == 1:
        return SINGLE
    if _connected.get("ranks") is None:
        _connected["ranks"] = MPIRanks(timeout)
    _connected["ranks"].timeout = timeout
    return _connected["ranks"]


_connected = {}


def digest(value):
    """16 bytes that change with any bit of value (an ndarray, bytes, str or JSON-able data)."""
    if isinstance(value, np.ndarray):
        value = np.ascontiguousarray(value).view(np.uint8)
    elif not isinstance(value, (bytes, bytearray)):
        value = json.dumps(value, sort_keys=True).encode()
    return hashlib.blake2b(value, digest_size=16).digest()


class Ranks:
    """One process: every collective is the identity. MPIRanks overrides them."""
    rank, size, local_size = 0, 1, 1

    @property
    def is_main(self):
        """Rank 0 prints, writes metrics, TensorBoard and checkpoints, and samples."""
        return self.rank == 0

    def threads(self):
        """Compute threads per process when --threads is not given (None: all cores)."""
        return None

    def shard(self, batch):
        """This rank's rows of a global batch (x, y): rank r takes the r-th of size equal slices."""
        x, y = batch
        if self.size == 1:
            return batch
        if len(x) % self.size:
            raise DistributedError(f"a global batch of {len(x)} rows does not split over {self.size} ranks")
        n = len(x) // self.size
        return x[self.rank * n:(self.rank + 1) * n], y[self.rank * n:(self.rank + 1) * n]

    def seed_dropout(self, seed, it):
        """Ranks above 0 draw dropout masks from their own stream, seeded per step from
        (seed, rank, step), so a resume continues it with nothing saved; rank 0 keeps the
        checkpointed stream of a one-process run."""
        if self.rank > 0:
            minigrad.manual_seed([seed, self.rank, it])

    def sum(self, value):
        """value (a number or a sequence of numbers) added up over ranks, in float64."""
        return value

    def reduce_gradients(self):
        pass

    def attach(self, flat):
        """The FlatParameters whose .grad reduce_gradients() sums."""

    def agree_stop(self, requested):
        """Every rank's Ctrl-C flag, agreed: None, or a rank that asked to stop."""
        return self.rank if requested else None

    def main_first(self, fn):
        """fn() on rank 0, then on the others: rank 0 writes what they read (the token cache,
        a recovered checkpoint, Numba's compiled kernels)."""
        return fn()

    def share_from_main(self, text):
        """Rank 0's text, on every rank."""
        return text

    def check_same(self, values):
        """Stop with a DistributedError naming what differs when ranks hold different values
        (name -> anything digest() takes)."""

    def abort_on_error(self):
        return contextlib.nullcontext()


SINGLE = Ranks()


class MPIRanks(Ranks):
    """The ranks of MPI_COMM_WORLD, through mpi4py."""

    def __init__(self, timeout):
        try:
            from mpi4py import MPI
        except ImportError:
            raise ConfigError(f"launched as {launched_world_size()} processes, but mpi4py is not "
                              f"installed: pip install 'minigrad-gpt[mpi]'") from None
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if self.size != launched_world_size():
            raise DistributedError(f"the launcher started {launched_world_size()} processes but MPI "
                                   f"sees {self.size}: mpi4py's MPI is not the launcher's")
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        self.timeout, self.flat = timeout, None
        self.reduce_seconds, self.reduce_bytes = 0.0, 0  # totals, for benchmarks
        self._waiting = None  # (what, since) while inside a collective
        self._agreed = None   # an error every rank raised together
        threading.Thread(target=self._watch, daemon=True, name="ddp-watchdog").start()

    def attach(self, flat):
        self.flat = flat

    def threads(self):
        """The cores shared out among this machine's ranks: oversubscription is the enemy."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
        return max(1, cores // self.local_size)

    # ---- collectives, each under the watchdog ------------------------------------------

    @contextlib.contextmanager
    def _collective(self, what):
        self._waiting = (what, time.monotonic())
        try:
            yield
        finally:
            self._waiting = None

    def _watch(self):
        while True:
            time.sleep(min(1.0, self.timeout / 20))
            waiting = self._waiting
            if waiting is not None and time.monotonic() - waiting[1] > self.timeout:
                self._abort(f"rank {self.rank}: no answer from the other ranks for {self.timeout:g} s "
                            f"while {waiting[0]} (a rank died, hangs or was stopped; --ddp-timeout "
                            f"sets the wait); stopping all {self.size} ranks")

    def _abort(self, message):
        print(f"error: {message}", file=sys.stderr, flush=True)
        time.sleep(0.5)  # let the launcher forward the message before it kills the job
        self.comm.Abort(1)

    def _allreduce(self, buf, op, what):
        with self._collective(what):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=op)
        return buf

    def sum(self, value):
        buf = np.atleast_1d(np.array(value, dtype=np.float64))
        self._allreduce(buf, self.MPI.SUM, "adding up counts and losses")
        return float(buf[0]) if np.ndim(value) == 0 else buf

    def reduce_gradients(self):
        """Sum flat.grad over ranks in place, bucket by bucket. A parameter backward did not
        reach on this rank contributes zeros."""
        self.flat.fill_missing_grads()
        t0 = time.perf_counter()
        for bucket in self.flat.buckets(BUCKET_BYTES // self.flat.grad.itemsize):
            self._allreduce(bucket, self.MPI.SUM, "adding up the gradients")
        self.reduce_seconds += time.perf_counter() - t0
        self.reduce_bytes += self.flat.grad.nbytes

    def agree_stop(self, requested):
        buf = np.array([self.rank + 1 if requested else 0], dtype=np.int64)
        asked = int(self._allreduce(buf, self.MPI.MAX, "agreeing whether to stop")[0])
        return asked - 1 if asked else None

    def share_from_main(self, text):
        data = np.frombuffer(text.encode(), dtype=np.uint8) if self.is_main else None
        n = np.array([len(data) if self.is_main else 0], dtype=np.int64)
        with self._collective("receiving rank 0's settings"):
            self.comm.Bcast(n, root=0)
            data = data.copy() if self.is_main else np.empty(int(n[0]), dtype=np.uint8)
            self.comm.Bcast(data, root=0)
        return data.tobytes().decode()

    def check_same(self, values):
        names = sorted(values)
        mine = np.frombuffer(b"".join(digest(values[k]) for k in names), dtype=np.uint8)
        every = np.empty((self.size, len(mine)), dtype=np.uint8)
        with self._collective("comparing the ranks' " + ", ".join(names)):
            self.comm.Allgather(mine, every)
        every = every.reshape(self.size, len(names), 16)
        differ = {k: [r for r in range(self.size) if (every[r, i] != every[0, i]).any()]
                  for i, k in enumerate(names)}
        differ = {k: ranks for k, ranks in differ.items() if ranks}
        if differ:
            detail = "; ".join(f"{k} on ranks {', '.join(map(str, ranks))}" for k, ranks in differ.items())
            raise self._agree(DistributedError(
                f"the ranks disagree with rank 0 ({detail}): every rank needs the same code, data, "
                f"flags and checkpoint, or they would train different models"))

    # ---- errors ----------------------------------------------------------------------

    def main_first(self, fn):
        """fn() on rank 0, then on the others. An error on any rank stops every rank: the
        failing one re-raises it, the others raise a DistributedError naming it."""
        result = None
        for turn in (True, False):
            error = None
            if self.is_main == turn:
                try:
                    result = fn()
                except BaseException as e:  # noqa: B036 -- re-raised below on every rank
                    error = e
            failed = self._allreduce(np.array([self.rank + 1 if error else 0], dtype=np.int64),
                                     self.MPI.MAX, "waiting for rank 0 to prepare" if turn else
                                     "waiting for the ranks to prepare")[0]
            if error is not None:
                raise self._agree(error)
            if failed:
                raise self._agree(DistributedError(f"rank {failed - 1} stopped with an error (above)"))
        return result

    def _agree(self, error):
        self._agreed = error
        return error

    @contextlib.contextmanager
    def abort_on_error(self):
        """Errors every rank raises together pass; any other ends every rank (MPI_Abort) rather
        than leaving them waiting in a collective. A Ctrl-C that only this rank saw passes too:
        the others follow through the stop flag, or the watchdog."""
        try:
            yield
        except (KeyboardInterrupt, NonFiniteLossError):
            raise
        except BaseException as e:  # noqa: B036
            if e is self._agreed:
                raise
            traceback.print_exc()
            self._abort(f"rank {self.rank}: {type(e).__name__}: {e}; stopping all {self.size} ranks")
