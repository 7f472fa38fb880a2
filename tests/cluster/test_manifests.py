"""The cluster files stay loadable and consistent: the Ray cluster-launcher YAML passes the
schema and validator that ship inside the installed `ray`, the KubeRay manifests parse and
point at entrypoints and configs that exist, and every config in jobs/configs loads."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from raysynth.config import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
RAY_SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def launcher_config() -> dict:
    return yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))


def kuberay(name: str) -> dict:
    (doc,) = yaml.safe_load_all((CLUSTER / name).read_text(encoding="utf-8"))
    return doc


def test_launcher_yaml_passes_the_schema_shipped_with_ray():
    config = launcher_config()
    jsonschema.validate(config, json.loads(RAY_SCHEMA.read_text(encoding="utf-8")))
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"


def test_launcher_schema_check_is_not_vacuous():
    config = launcher_config()
    config["available_node_types"]["gpu"]["min_worker"] = 1  # misspelled
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        jsonschema.validate(config, json.loads(RAY_SCHEMA.read_text(encoding="utf-8")))


def test_launcher_mounts_the_checkout_and_data_the_configs_expect():
    mounts = launcher_config()["file_mounts"]
    assert mounts["/home/ray/raysynth"] == "."
    assert (REPO / mounts["/home/ray/shared/data"]).resolve() == (REPO.parent / "shared/data")


def test_kuberay_manifests_parse_with_the_v1_api():
    cluster, job = kuberay("raycluster.yaml"), kuberay("rayjob.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"], "rayjob.yaml drifted"
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"]["mode"] == "token"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"gpu", "cpu"}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(groups["cpu"])


def test_kuberay_images_are_the_dockerfile_build_of_this_ray_version():
    dockerfile = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    assert f"FROM rayproject/ray:{ray.__version__}-py311-gpu" in dockerfile
    for source in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), f"Dockerfile copies missing {path}"
    images = re.findall(r"image: (\S+)", (CLUSTER / "raycluster.yaml").read_text())
    assert images and all(i.endswith(f"-ray{ray.__version__}-py311-gpu") for i in images)


def test_rayjob_entrypoint_and_its_config_exist(shared_data):
    job = kuberay("rayjob.yaml")["spec"]
    words = shlex.split(job["entrypoint"])
    assert words[0] == "python"
    assert (REPO / words[1]).is_file()
    config = REPO / words[words.index("--config") + 1]
    assert load_config(config).name
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    assert runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    head = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["workingDir"] == "/home/ray/raysynth", "relative entrypoint needs the checkout"


def test_every_volume_mount_has_a_volume():
    for name in ("raycluster.yaml", "rayjob.yaml"):
        text = (CLUSTER / name).read_text(encoding="utf-8")
        claims = re.findall(r"claimName: (\S+?)}", text)
        assert claims == ["raysynth-storage"], name
    (claim,) = yaml.safe_load_all((CLUSTER / "storage.yaml").read_text(encoding="utf-8"))
    assert claim["metadata"]["name"] == "raysynth-storage"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize(
    "path", sorted((REPO / "jobs" / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_job_config_loads(path, shared_data):
    config = load_config(path)
    assert config.name


def test_gpu_config_runs_every_stage_on_gpus(shared_data):
    config = load_config(REPO / "jobs" / "configs" / "gpu.yaml")
    assert config.generate.backend.kind == "vllm" and config.generate.backend.device == "gpu"
    assert config.train.use_gpu and config.train.num_workers > 1
    assert config.evaluate.use_gpu
    assert str(config.storage).startswith("/mnt/cluster_storage/")
    annotator = config.annotate.backend  # a rate-limited API, its key from the environment
    assert annotator.kind == "openai" and annotator.api_key_env
    assert annotator.requests_per_minute and annotator.tokens_per_minute


def test_job_runtime_env_keeps_bulk_out_of_the_upload():
    runtime_env = yaml.safe_load((REPO / "jobs" / "runtime_env.yaml").read_text())
    for bulky in ("/.venv/", "/.git/", "/runs/"):
        assert bulky in runtime_env["excludes"]
    assert runtime_env["py_modules"] == ["src/raysynth"]
    assert (REPO / "src" / "raysynth" / "__init__.py").is_file()
