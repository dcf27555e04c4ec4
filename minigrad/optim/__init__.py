"""minigrad.optim, as torch.optim: AdamW and Adam (adamw.py), and the warm-up + cosine
learning-rate schedule of GPT training (schedule.py)."""
from minigrad.optim.adamw import Adam, AdamW  # noqa: F401
from minigrad.optim.schedule import get_lr  # noqa: F401
