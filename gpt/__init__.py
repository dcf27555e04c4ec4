"""gpt: a GPT-2 built on minigrad, with its tokenizer, optimizer, sampler and trainer."""
