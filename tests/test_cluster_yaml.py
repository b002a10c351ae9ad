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


def test_run_root_is_shared_s3(config):
    setup = "\n".join(config["setup_commands"])
    assert "HARDMINE_RUN_ROOT=s3://" in setup
    assert "/hardmine/runs" in setup


def test_start_commands(config):
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in worker
