"""The pipeline's files as DVC reads them (tests/pipeline/test_pipeline.py runs `dvc repro`)."""


def test_dvc_parses_yaml_with_the_c_parser():
    """ruamel.yaml's C parser is an optional extra; without it every dvc command parses dvc.yaml, dvc.lock and
    params.yaml in pure Python (a third of a profiled no-op `dvc repro` here)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None and YAML(typ="safe").Parser is CParser
