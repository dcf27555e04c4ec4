"""Training data: the corpus (corpus.py), its token ids (tokens.py), batches (batches.py);
task examples (tasks.py), the built-in tasks (builtin_tasks.py); datasets.py puts either
kind behind one interface for a run."""
from gpt.data.batches import BatchSampler  # noqa: F401
from gpt.data.corpus import BUILTIN, builtin_corpus, load_text, read_text_file, split_text  # noqa: F401
from gpt.data.datasets import ENDOFTEXT, TaskData, TextData, is_task, open_dataset  # noqa: F401
from gpt.data.tasks import TaskSampler  # noqa: F401
from gpt.data.tokens import build_tokenizer, check_lengths, encode, encode_cached, tokenizer_digest  # noqa: F401
