import pytest

from hardmine.config import ConfigError, load_config, parse_overrides


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_valid_config_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\ndata: {path: a.csv}\n"), ["oof.folds=3", "oof.lr=0.001"])
    assert cfg.oof.folds == 3 and cfg.oof.lr == 0.001 and cfg.data.path == "a.csv"
    assert cfg.run_dir.endswith("/x")


@pytest.mark.parametrize(
    "yaml_text, overrides, needle",
    [
        ("data: {path: a.csv}\noof: {fols: 3}\n", [], "oof.fols: unknown key. did you mean 'oof.folds'"),
        ("data: {path: a.csv}\n", ["oof.folds=1"], "oof.folds: Input should be greater than or equal to 2"),
        ("data: {path: a.csv}\n", ["oof.lr=-0.1"], "oof.lr: Input should be greater than 0"),
        ("data: {path: a.csv}\n", ["oof.epochs=two"], "oof.epochs: Input should be a valid integer"),
        ("data: {path: a.csv}\n", ["oof.backbone=lora"], "oof.backbone"),
        ("data: {}\n", [], "set data.path"),
        ("data: {path: a.csv, demo: {}}\n", [], "exclusive"),
        ("data: {path: a.csv}\noof: {backbone: finetune, model: 'packaged:use-multilingual'}\n", [], "frozen backbone only"),
        ("dat: {path: a.csv}\n", [], "did you mean 'data'"),
        ("name: 'bad name/..'\ndata: {path: a.csv}\n", [], "name"),
    ],
)
def test_bad_config_names_key_and_fix(tmp_path, yaml_text, overrides, needle):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, yaml_text), overrides)
    assert needle in str(e.value)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_overrides(["oof.folds"])
    assert parse_overrides(["a.b=1", "a.c=[1, 2]", "d=null"]) == {"a": {"b": 1, "c": [1, 2]}, "d": None}


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))


def test_data_files_count_by_content_not_by_how_their_paths_are_spelled(tmp_path, monkeypatch):
    """The stage fingerprints hash these files' content; the config hash keeps only what decides how they are read."""
    monkeypatch.chdir(tmp_path)
    body = "data: {{path: {d}a.csv, test_path: {d}t.csv, truth_path: {d}truth.csv, unlabelled_path: {d}pool.csv}}\n" \
           "oof: {{backbones: [external], probs_path: {d}p.parquet}}\n"
    rel = load_config(write(tmp_path, body.format(d="")))
    absolute = load_config(write(tmp_path, body.format(d=f"{tmp_path}/")))
    dotted = load_config(write(tmp_path, body.format(d="./sub/../")))
    assert rel.section_hash("data", "oof") == absolute.section_hash("data", "oof") == dotted.section_hash("data", "oof")
    assert rel.section_hash() == absolute.section_hash()
    assert rel.model_dump()["data"]["path"] == "a.csv"  # the config itself keeps the path as given
    other_format = load_config(write(tmp_path, body.format(d="").replace("a.csv", "a.tsv")))
    assert other_format.section_hash("data") != rel.section_hash("data")
    other_column = load_config(write(tmp_path, body.format(d="")), ["data.text_column=body"])
    assert other_column.section_hash("data") != rel.section_hash("data")


def test_section_hash_changes_with_section_only(tmp_path):
    a = load_config(write(tmp_path, "data: {path: a.csv}\n"))
    b = load_config(write(tmp_path, "data: {path: a.csv}\n"), ["oof.epochs=9"])
    assert a.section_hash("data") == b.section_hash("data")
    assert a.section_hash("oof") != b.section_hash("oof")
