"""The `gpt` command: one subcommand per job (tokenizer, train, sample, eval)."""
import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(prog="gpt", description="Train, evaluate and sample small GPTs on minigrad.")
    sub = parser.add_subparsers(dest="command", required=True)
    from gpt import tokenizer_cli
    tokenizer_cli.add_subcommand(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
