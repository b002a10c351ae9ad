"""cluster.yaml is a valid Ray 2.60 cluster-launcher config for an AWS GPU cluster."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray.autoscaler

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


@pytest.fixture(scope="module")
def config() -> dict:
    with open(ROOT / "cluster.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def _ray_validate(cfg: dict) -> None:
    """What `ray up` does before touching the cloud: fill defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def test_schema_ships_with_ray(schema):
    assert schema["additionalProperties"] is False
    assert "available_node_types" in schema["properties"]


def test_valid_against_ray_schema(config, schema):
    jsonschema.validate(config, schema)


def test_valid_for_ray_validate_config(config):
    _ray_validate(config)


def test_misspelled_key_is_rejected(config, schema):
    broken = copy.deepcopy(config)
    broken["max_worker"] = broken.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        _ray_validate(broken)


def test_misspelled_node_type_key_is_rejected(config, schema):
    broken = copy.deepcopy(config)
    gpu = broken["available_node_types"]["worker.gpu"]
    gpu["min_worker"] = gpu.pop("min_workers")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_fractional_gpu_resource_is_rejected(config, schema):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["worker.gpu"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_unknown_head_type_is_rejected(config):
    broken = copy.deepcopy(config)
    broken["head_node_type"] = "head.missing"
    with pytest.raises(ValueError, match="head_node_type"):
        _ray_validate(broken)


def test_provider_is_aws(config):
    p = config["provider"]
    assert p["type"] == "aws"
    assert p["region"] and p["availability_zone"].startswith(p["region"])
    assert isinstance(p["cache_stopped_nodes"], bool)
    assert config["auth"]["ssh_user"] == "ubuntu"


def test_head_is_cpu_and_worker_is_gpu(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["node_config"]["InstanceType"].startswith("m6i.")
    assert head["resources"].get("GPU", 0) == 0
    assert head["node_config"]["ImageId"].startswith("ami-")

    gpu_types = {k: v for k, v in types.items() if v["resources"].get("GPU", 0) >= 1}
    assert len(gpu_types) == 1
    (name, gpu), = gpu_types.items()
    assert name != config["head_node_type"]
    assert gpu["node_config"]["InstanceType"] in {"g5.xlarge", "g5.12xlarge"}
    expected_gpus = {"g5.xlarge": 1, "g5.12xlarge": 4}[gpu["node_config"]["InstanceType"]]
    assert gpu["resources"]["GPU"] == expected_gpus
    assert 0 <= gpu["min_workers"] <= gpu["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0


def test_dlami_placeholder_is_commented(config):
    text = (ROOT / "cluster.yaml").read_text()
    assert text.lower().count("change to your region's dlami") >= 2


def test_setup_installs_gpu_extra_from_mounted_project(config):
    mount = config["file_mounts"]
    assert "~/hardmine" in mount and mount["~/hardmine"] == "."
    setup = "\n".join(config["setup_commands"])
    assert "cd ~/hardmine" in setup
    assert 'pip install -e ".[gpu,offline]"' in setup
    # into the venv Ray runs from (on PATH through ~/.bashrc)
    assert "VIRTUAL_ENV=~/hardmine-venv" in setup and "hardmine-venv/bin" in setup


def _python_versions(setup: str) -> list[tuple[int, int]]:
    """Python versions the setup commands install or build the venv with (``uv python install X``,
    ``uv venv --python X``, ``pythonX.Y -m venv``)."""
    import re

    found = re.findall(r"uv python install (\d+)\.(\d+)", setup)
    found += re.findall(r"uv venv[^\n]*--python (\d+)\.(\d+)", setup)
    found += re.findall(r"python(\d+)\.(\d+) -m venv", setup)
    return [(int(a), int(b)) for a, b in found]


def test_setup_installs_python_311_or_newer_for_the_venv(config):
    """The DLAMI's python3 is 3.10; the pins need >= 3.11: setup installs one and builds the venv with it."""
    from packaging.specifiers import SpecifierSet

    try:
        import tomllib
    except ImportError:  # pragma: no cover
        import tomli as tomllib
    setup = "\n".join(config["setup_commands"])
    versions = _python_versions(setup)
    assert versions, "setup_commands must install a Python >= 3.11 (e.g. `uv python install 3.11`)"
    assert all(v >= (3, 11) for v in versions), versions
    venv = [c for c in config["setup_commands"] if "uv venv" in c and "~/hardmine-venv" in c]
    assert venv and all("--python 3.1" in c for c in venv), "the venv must be created with the installed Python, not python3 (3.10)"
    assert "python3 -m venv" not in setup
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(".".join(map(str, max(versions))))
    assert not SpecifierSet(requires).contains("3.10"), "requires-python must match the pins (>= 3.11)"
    # the autoscaler's boto3 goes into the same venv as the ray that runs it
    assert any("hardmine-venv" in c and "boto3" in c for c in config["head_setup_commands"])


def test_broken_python_pin_would_be_caught(config):
    broken = "\n".join(c.replace("3.11", "3.10") for c in config["setup_commands"])
    assert _python_versions(broken) and not all(v >= (3, 11) for v in _python_versions(broken))


def test_run_root_is_shared_s3(config):
    setup = "\n".join(config["setup_commands"])
    assert "HARDMINE_RUN_ROOT=s3://" in setup
    assert "/hardmine/runs" in setup


def test_start_commands(config):
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker
