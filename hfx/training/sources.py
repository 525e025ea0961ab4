"""Where data and models come from: Hub ids, local files and folders, URLs, and files inside packages."""

import hashlib
import importlib.metadata
import importlib.util
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import fsspec
from datasets import Dataset, DatasetDict, load_dataset_builder
from datasets.data_files import DataFilesDict, get_data_patterns
from datasets.packaged_modules import _EXTENSION_TO_MODULE

from hfx.training.idx_images import is_idx_folder, read_idx
from hfx.training.params import Data, Model, ParamsError
from hfx.training.squad_json import is_squad_json, read_squad_json

FORMATS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
COMPRESSIONS = (".bz2", ".gz", ".xz", ".zst")
URL_SCHEMES = ("http", "https", "s3", "gs", "gcs")
PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "tokenizer.model",
    "preprocessor_config.json",
)


def package_path(spec: str, key: str) -> Path:
    """`pkg:<package>/<path>` -> the file inside the installed package, found without importing it."""
    package, _, inner = spec.removeprefix("pkg:").partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise ParamsError(f"{key}: package '{package}' is not installed (from {spec}); see requirements-assets.txt")
    path = Path(list(found.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise ParamsError(f"{key}: '{inner}' not found in package '{package}' ({path})")
    return path


def _suffix(name: str) -> str:
    suffixes = [s.lower() for s in Path(urlparse(name).path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def file_format(name: str) -> tuple[str, dict]:
    """The `datasets` builder and its options for a file name, looking through a compression suffix."""
    if _suffix(name) not in FORMATS:
        raise ParamsError(
            f"data.source: cannot tell the format of '{name}'; valid: {', '.join(FORMATS)}, .conll"
            f" (optionally compressed: {', '.join(COMPRESSIONS)})"
        )
    return _EXTENSION_TO_MODULE[_suffix(name)]


def is_conll(data: Data, name: str) -> bool:
    return data.format == "conll" or _suffix(name) == ".conll"


def read_conll(files: list[str]) -> Dataset:
    """CoNLL column files: `word ... tag` per line (space or tab separated, the tag last), a blank line between
    sentences, `-DOCSTART-` lines dropped. Columns `tokens` and `ner_tags`."""
    sentences, words, tags = [], [], []
    for file in files:
        with fsspec.open(file, "rt", encoding="utf-8", compression="infer") as lines:
            for number, line in enumerate(lines, 1):
                fields = line.split()
                if fields and fields[0] != "-DOCSTART-" and len(fields) < 2:
                    raise ParamsError(
                        f"data.source: {Path(file).name} line {number}: '{line.strip()}' has a word"
                        " and no tag; CoNLL lines are `word ... tag`"
                    )
                if fields and fields[0] != "-DOCSTART-":
                    words.append(fields[0])
                    tags.append(fields[-1])
                elif words:
                    sentences.append((words, tags))
                    words, tags = [], []
        if words:
            sentences.append((words, tags))
            words, tags = [], []
    return Dataset.from_dict({"tokens": [w for w, _ in sentences], "ner_tags": [t for _, t in sentences]})


def folder_files(data: Data) -> dict[str, list[str]]:
    """Each split's files in a folder: `data.data_files` if given, else as `datasets` infers them from names."""
    folder = str(Path(data.source).resolve())
    patterns = data.data_files or get_data_patterns(folder)
    patterns = {str(split): [p] if isinstance(p, str) else list(p) for split, p in patterns.items()}
    try:
        resolved = DataFilesDict.from_patterns(patterns, base_path=folder)
    except FileNotFoundError as exc:
        raise ParamsError(f"data.data_files: {str(exc).splitlines()[0]} in {data.source}") from None
    return {split: sorted(files) for split, files in resolved.items()}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_source(data: Data) -> tuple[DatasetDict, dict]:
    """Every split the source has, as `datasets` infers them, and what was read: the Hub commit of this load,
    a URL's size, ETag, Last-Modified and the sha256 of its bytes, a package's version, local files' sha256."""
    source = data.source
    if source.startswith("hf:"):
        loaded, commit = _load(data, source.removeprefix("hf:"), name=data.config, revision=data.revision)
        if not re.fullmatch(r"[0-9a-f]{40}", commit or ""):
            _warn(f"data.source: the Hub commit of '{source}' is unresolved ({commit}); the manifest cannot pin it")
            commit = f"unresolved ({commit})"
        return loaded, {"hub_commit": commit, "revision": data.revision}
    if urlparse(source).scheme in URL_SCHEMES:
        with tempfile.TemporaryDirectory() as folder:  # datasets keeps its own Arrow copy once loaded
            if is_conll(data, source):
                local, read = _fetch(source, Path(folder))
                return DatasetDict({"train": _parse(data, [str(local)])}), read
            builder, options = file_format(source)
            local, read = _fetch(source, Path(folder))
            return _load(data, builder, data_files={"train": str(local)}, **options)[0], read
    path = package_path(source, "data.source") if source.startswith("pkg:") else Path(source)
    if not path.exists():
        raise ParamsError(
            f"data.source: '{source}' does not exist; give a file, a folder, a URL, hf:<id> or pkg:<package>/<path>"
        )
    if path.is_dir() and is_idx_folder(path):
        return read_idx(path), {"files": {f.name: _sha256(f) for f in sorted(path.glob("*-idx?-ubyte*"))}}
    if path.is_dir():
        files = folder_files(data)
        for split, names in files.items():
            if len(names) > 1 and any(_suffix(n) in FORMATS for n in names):  # train.csv and train_fine.csv
                _warn(
                    f"data.source: split '{split}' reads {len(names)} files"
                    f" ({', '.join(Path(n).name for n in names)}); set data.data_files to choose"
                )
        read = {"files": {split: {Path(f).name: _sha256(Path(f)) for f in names} for split, names in files.items()}}
        if any(is_conll(data, name) for names in files.values() for name in names):
            return DatasetDict({split: _parse(data, names) for split, names in files.items()}), read
        if all(is_squad_json(name) for names in files.values() for name in names):
            return DatasetDict({split: read_squad_json(names) for split, names in files.items()}), read
        return _load(data, str(path), data_files=files)[0], read
    read = {"sha256": _sha256(path)}
    if source.startswith("pkg:"):
        read = {"package_version": _package_version(source.removeprefix("pkg:").split("/")[0]), **read}
    if is_conll(data, path.name):
        return DatasetDict({"train": _parse(data, [str(path)])}), read
    if is_squad_json(str(path)):
        return DatasetDict({"train": read_squad_json([str(path)])}), read
    builder, options = file_format(path.name)
    return _load(data, builder, data_files={"train": str(path)}, **options)[0], read


def _parse(data: Data, files: list[str]) -> Dataset:
    try:
        return read_conll(files)
    except UnicodeDecodeError as exc:
        raise ParamsError(f"data.source: cannot load '{data.source}': {exc}; save the file as UTF-8") from None


def _package_version(package: str) -> str:
    # The import name can differ from the distribution's (yaml / PyYAML).
    distributions = importlib.metadata.packages_distributions().get(package, [])
    if not distributions:
        _warn(f"data.source: package '{package}' has no installed distribution; its version is unknown")
        return "unknown"
    return importlib.metadata.version(distributions[0])


def _fetch(url: str, folder: Path) -> tuple[Path, dict]:
    """Download a URL once: the local copy that is then loaded, and what identifies its bytes."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        local, digest, size = folder / Path(urlparse(url).path).name, hashlib.sha256(), 0
        with fs.open(path, "rb") as remote, open(local, "wb") as copy:
            for chunk in iter(lambda: remote.read(1 << 20), b""):
                digest.update(chunk)
                copy.write(chunk)
                size += len(chunk)
    except Exception as exc:  # noqa: BLE001 - every backend raises its own types; the user needs the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParamsError(f"data.source: cannot read '{url}': {reason}") from None
    served = {key.lower().replace("-", ""): value for key, value in info.items()}
    read = {"url": url, "size": size, "sha256": digest.hexdigest()}
    for name, keys in (("etag", ("etag",)), ("last_modified", ("lastmodified", "updated"))):
        value = next((served[key] for key in keys if served.get(key) is not None), None)
        if value is not None:
            read[name] = str(value).strip('"')
    return local, read


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _load(data: Data, path: str, **kwargs) -> tuple[DatasetDict, str | None]:
    """`load_dataset` in its own steps, so that the commit it resolved for a Hub dataset is known: (splits, hash)."""
    try:
        builder = load_dataset_builder(path, **kwargs)
        builder.download_and_prepare()
        loaded = builder.as_dataset()
    except ParamsError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the source and the reason
        if type(exc).__name__ == "DatasetGenerationError" and exc.__cause__ is not None:
            exc = exc.__cause__  # the parser's own error says what is wrong with the file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, UnicodeDecodeError) or "codec can't decode" in reason:
            reason += "; save the file as UTF-8"
        elif data.source.startswith("hf:"):
            reason += " (is the Hugging Face Hub reachable? offline, use a local file or pkg:<package>/<path>)"
        raise ParamsError(f"data.source: cannot load '{data.source}': {reason}") from None
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return loaded, builder.hash


def model_path(model: Model) -> str:
    """A local folder or Hub id that `from_pretrained` accepts."""
    if model.name.startswith("pkg:"):
        path = package_path(model.name, "model.name")
    elif Path(model.name).exists():
        path = Path(model.name)
    else:
        return model.name  # a Hub id; from_pretrained resolves it (and reports when offline)
    if not (path / "config.json").is_file():
        raise ParamsError(f"model.name: '{model.name}' is not a model folder (no config.json in {path})")
    if model.init == "pretrained" and not any(path.glob("*.safetensors")):
        raise ParamsError(
            f"model.name: '{model.name}' has no .safetensors weights in {path}; hfx never loads"
            " pickled weights (convert with save_pretrained(..., safe_serialization=True); or"
            " model.init: random to train its architecture from scratch)"
        )
    if not any((path / name).is_file() for name in PROCESSOR_FILES):
        raise ParamsError(
            f"model.name: '{model.name}' has no tokenizer or image processor in {path} (one of"
            f" {', '.join(PROCESSOR_FILES)})"
        )
    return str(path)


def pretrained_kwargs(model: Model, weights: bool = True) -> dict:
    """Safe loading: weights from safetensors only (never a pickle), remote code only when asked for."""
    kwargs = {"revision": model.revision, "trust_remote_code": model.trust_remote_code}
    return {**kwargs, "use_safetensors": True} if weights else kwargs


def from_pretrained(loader, model: Model, **kwargs):
    """Call `loader.from_pretrained` on the configured model with a one-line error when it fails."""
    name = model_path(model)
    try:
        weights = not loader.__name__.endswith(("Tokenizer", "Config", "Processor"))
        return loader.from_pretrained(name, **pretrained_kwargs(model, weights), **kwargs)
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0]
        hint = "" if Path(name).exists() else "; offline? use a local folder or pkg:<package>/<path>"
        raise ParamsError(f"model.name: cannot load '{model.name}': {reason}{hint}") from None
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ParamsError(
            f"model.name: '{model.name}' runs custom code from its repository; read it, then set"
            " model.trust_remote_code: true if you trust it"
        ) from None
