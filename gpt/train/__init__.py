"""Training: building a run (run.py), one step and one evaluation (step.py), the loop with
checkpoints and Ctrl-C (loop.py), its progress line, metrics file and plots (progress.py),
its TensorBoard event files (tensorboard.py), and data parallelism over MPI (ddp.py)."""
from gpt.train.loop import train, train_loop  # noqa: F401
from gpt.train.run import Run, build_run  # noqa: F401
from gpt.train.step import evaluate, train_step  # noqa: F401
