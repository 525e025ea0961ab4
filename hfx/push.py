"""Share an exported model folder on the Hugging Face Hub: `hfx push --repo org/name` (`make hub-push REPO=org/name`).

Reads the folder (models/export by default), which must hold its model card (README.md, as export writes it), and
a token: HF_TOKEN, or the one `hf auth login` saved. Creates the model repository, private unless --public, and
uploads every file of the folder in one commit with huggingface_hub.upload_folder. --dry-run checks all that and
lists the files without a token or a network.
"""

import argparse
import re
import sys
from pathlib import Path

# The pieces of a folder that loads: its model card, its config and one set of weights.
CARD = "README.md"
WEIGHTS = ("model.safetensors", "model.onnx", "model_quantized.onnx")
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")  # owner/name, as the Hub spells them


class PushError(Exception):
    """A folder, repository id or token that cannot be pushed: one line, exit code 1, before any upload."""


def files_to_upload(folder: Path) -> list[str]:
    """Every file the upload sends, relative to the folder, in order. A hidden file (an editor's, a .partial of
    an interrupted write) stays behind."""
    if not folder.is_dir():
        raise PushError(f"--model: '{folder}' is not a folder (an exported model: `dvc repro` writes models/export)")
    files = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if CARD not in files:
        raise PushError(f"--model: '{folder}' has no model card ({CARD}); push the folder `dvc repro` exported")
    if "config.json" not in files or not any(name in files for name in WEIGHTS):
        raise PushError(
            f"--model: '{folder}' is not a model folder: it needs config.json and one of {', '.join(WEIGHTS)}"
        )
    return files


def read_card(folder: Path):
    """The model card, parsed as the Hub parses it (its YAML metadata must load)."""
    import yaml
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(folder / CARD)
    except (ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())  # PyYAML's message spans lines
        raise PushError(f"--model: {folder / CARD} has metadata the Hub cannot read: {reason}") from None


def parse_args(argv, prog: str):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="the Hub model repository, owner/name (created if missing)")
    parser.add_argument("--model", type=Path, default=Path("models/export"), help="the folder (default: %(default)s)")
    parser.add_argument("--public", action="store_true", help="make a new repository public (default: private)")
    parser.add_argument("--revision", default=None, help="the branch to push to (default: the main branch)")
    parser.add_argument("--message", default=None, help="the commit message (default: one naming the folder)")
    parser.add_argument("--dry-run", action="store_true", help="check and list what would be uploaded, then stop")
    return parser.parse_args(argv)


def push(args) -> None:
    if not REPO_ID.fullmatch(args.repo):
        raise PushError(f"--repo: '{args.repo}' is not a Hub repository id; give owner/name, e.g. my-org/sentiment")
    files = files_to_upload(args.model)
    card = read_card(args.model)
    visibility = "public" if args.public else "private"
    base = f", fine-tuned from {card.data.base_model}" if card.data.base_model else ""
    print(f"{args.repo} ({visibility}): {len(files)} files from {args.model}{base}")
    for name in files:
        print(f"  {name}")
    if args.dry_run:
        return

    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()  # HF_TOKEN, else the token `hf auth login` saved
    if not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN (a write token from https://huggingface.co/settings/tokens)"
        )
    api = HfApi(token=token)
    try:
        url = api.create_repo(args.repo, private=not args.public, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=args.repo,
            folder_path=args.model,
            allow_patterns=files,  # exactly the listed files
            revision=args.revision,
            commit_message=args.message or f"Upload {args.model.name} exported by hfx",
        )
    except (HfHubHTTPError, OSError) as exc:
        raise PushError(f"--repo {args.repo}: {str(exc).splitlines()[0]}") from None
    print(f"pushed: {url}")


def main(argv=None, prog: str = "python -m hfx.push") -> None:
    try:
        push(parse_args(argv, prog))
    except PushError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
