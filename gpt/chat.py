"""The chat template: how a conversation becomes one text, and which parts of it are trained on.

ChatML, the format of OpenAI's chat models and of many open ones, with its turn
markers as special tokens:

    <|im_start|>system
    You are terse.<|im_end|>
    <|im_start|>user
    What is 2+3?<|im_end|>
    <|im_start|>assistant
    5<|im_end|>

Fine-tuning takes loss only on what the assistant says and the <|im_end|> that
closes it (`segments` marks them; an assistant message with OpenAI's `"weight": 0`
is context, not trained); sampling and serving render the conversation
so far and then `<|im_start|>assistant\\n`, and stop at <|im_end|>. The template is
saved beside the model (chat_template.json) so that every later step renders
prompts exactly as training did.
"""
import json
from dataclasses import asdict, dataclass

from minigrad.nn.state import write_json

from gpt.errors import DataError

ROLES = ("system", "user", "assistant")
TEMPLATE_FILE = "chat_template.json"


@dataclass(frozen=True)
class ChatTemplate:
    name: str = "chatml"
    start: str = "<|im_start|>"   # opens a turn, followed by the role and a newline
    end: str = "<|im_end|>"       # closes a turn: the assistant's stop token

    @property
    def special_tokens(self):
        return [self.start, self.end]

    def segments(self, messages, add_generation_prompt=False):
        """The conversation as (text, trained) pieces in order: trained is True for an
        assistant's content and its closing marker (unless the message has weight 0),
        False for everything else."""
        out = []
        for m in check_messages(messages):
            out.append((f"{self.start}{m['role']}\n", False))
            if m["role"] == "assistant":
                out.append((m["content"] + self.end, m.get("weight", 1) == 1))
                out.append(("\n", False))
            else:
                out.append((m["content"] + self.end + "\n", False))
        if add_generation_prompt:
            out.append((f"{self.start}assistant\n", False))
        return out

    def render(self, messages, add_generation_prompt=False):
        """The conversation as one string (what the model reads)."""
        return "".join(text for text, _ in self.segments(messages, add_generation_prompt))

    def save(self, folder):
        write_json(f"{folder}/{TEMPLATE_FILE}", asdict(self))

    @classmethod
    def load(cls, folder):
        """The template saved in a checkpoint folder, or None if it has none."""
        try:
            with open(f"{folder}/{TEMPLATE_FILE}", encoding="utf-8") as f:
                return cls(**json.load(f))
        except FileNotFoundError:
            return None


def check_messages(messages, where="messages"):
    """Messages as OpenAI's chat format has them: a non-empty list of {"role", "content"} with
    a known role and string content. A DataError naming `where` otherwise."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: expected a non-empty list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}[{i}]: a message needs 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataError(f"{where}[{i}]: unknown role {m['role']!r} (allowed: {', '.join(ROLES)})")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}[{i}]: content must be a string")
        if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)
                              or isinstance(m["weight"], bool)):
            raise DataError(f"{where}[{i}]: weight must be 0 or 1, on assistant messages only")
    return messages
