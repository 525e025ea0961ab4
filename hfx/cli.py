"""The `hfx` command, installed with the package (`pip install ".[serve]"`): `hfx predict ...`, `hfx serve ...` and
`hfx push ...` are `python -m hfx.predict ...` and so on; `hfx <command> --help` lists each one's options. `hfx tune`
runs in a clone of the project, with the training install."""

import argparse
import importlib
import sys

# command -> (module with main(argv, prog), what it does)
COMMANDS = {
    "predict": ("hfx.predict", "label texts, images or a table file with an exported model"),
    "serve": ("hfx.serve", "serve an exported model over HTTP"),
    "push": ("hfx.push", "share an exported model folder on the Hugging Face Hub"),
    "tune": ("hfx.tune", "search finetune params in a project, each trial a DVC experiment (training install)"),
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="hfx", description="Label with, serve or share a model folder that hfx exported; tune a project's params."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:  # --help, or an unknown command: argparse says which are valid
        parser.parse_args(argv)
    module, _ = COMMANDS[argv[0]]
    importlib.import_module(module).main(argv[1:], prog=f"hfx {argv[0]}")


if __name__ == "__main__":
    main()
