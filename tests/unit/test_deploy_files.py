"""The deployment files (docker-compose.prod.yml, Dockerfile, Dockerfile.gpu) against the code.

No Docker engine runs here, so nothing is built or started. What can rot silently is
checked instead: every name the compose file uses is defined in it, every environment
variable it sets is a real setting (``services.config.Settings`` alias) or one of the few
named below, every command it runs is a real ``claims-ocr`` subcommand or a Celery command
on the real app module and queues, and every file a Dockerfile copies exists.
``docker compose config`` validates the file too where the compose plugin is installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.config import Settings
from workers.app import QUEUES
from workers.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.prod.yml"
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.gpu"]
ENV_TEMPLATES = ROOT / "secrets.example"

#: Environment variables our services may set that are not settings, and why.
NON_SETTING_VARS = {
    # prometheus_client's multiprocess mode (metrics of Celery's pool processes).
    "PROMETHEUS_MULTIPROC_DIR",
    # workers.worker names the process in its logs with it (claims-ocr run sets it).
    "CLAIMS_OCR_PROCESS",
}
#: What third-party images may be given, by image name: their own documented variables.
IMAGE_VARS = {
    "postgres": re.compile(r"POSTGRES_[A-Z_]+|PGDATA"),
    "grafana/grafana-oss": re.compile(r"GF_[A-Z0-9_]+"),
}
#: Executables the third-party images run in their health checks and commands.
IMAGE_EXECUTABLES = {
    "redis": {"redis-server", "redis-cli"},
    "postgres": {"pg_isready"},
    "prom/prometheus": {"wget"},
    "grafana/grafana-oss": {"wget"},
}
DEFINED_KINDS = ("networks", "volumes", "secrets")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _ours(service: dict[str, Any]) -> bool:
    """Built from this repository (runs claims-ocr), not a third-party image."""
    return "build" in service


def _image_name(service: dict[str, Any]) -> str:
    return str(service["image"]).rsplit(":", 1)[0]


def setting_names() -> set[str]:
    return {field.alias or name for name, field in Settings.model_fields.items()}


# --- names ----------------------------------------------------------------------------------


def test_compose_names_only_what_it_defines() -> None:
    compose = _compose()
    services = compose["services"]
    defined = {kind: set(compose.get(kind) or {}) for kind in DEFINED_KINDS}
    problems = []
    for name, service in services.items():
        for network in service.get("networks") or []:
            if network not in defined["networks"]:
                problems.append(f"{name}: network {network}")
        for secret in service.get("secrets") or []:
            secret_name = secret["source"] if isinstance(secret, dict) else secret
            if secret_name not in defined["secrets"]:
                problems.append(f"{name}: secret {secret_name}")
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    problems.append(f"{name}: bind mount {source} does not exist")
            elif source not in defined["volumes"]:
                problems.append(f"{name}: volume {source}")
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(f"{name}: depends on {dependency}")
    assert not problems, "undefined names:\n" + "\n".join(problems)


def test_compose_defines_nothing_unused() -> None:
    compose = _compose()
    used: dict[str, set[str]] = {kind: set() for kind in DEFINED_KINDS}
    for service in compose["services"].values():
        used["networks"] |= set(service.get("networks") or [])
        used["secrets"] |= {
            s["source"] if isinstance(s, dict) else s for s in service.get("secrets") or []
        }
        used["volumes"] |= {str(v).split(":")[0] for v in service.get("volumes") or []}
    for kind in DEFINED_KINDS:
        assert set(compose.get(kind) or {}) <= used[kind], f"unused {kind}"


def test_secret_files_live_under_secrets_and_are_read_by_name() -> None:
    """Compose mounts secret NAME at /run/secrets/NAME; settings read from there by alias."""
    compose = _compose()
    aliases = {alias.lower() for alias in setting_names()}
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    for service_name, service in compose["services"].items():
        if not _ours(service):
            continue
        for secret in service.get("secrets") or []:
            path = f"/run/secrets/{secret}"
            # Either a setting of that name (read from the file) or one pointing at the file.
            pointed = path in {str(v) for v in service["environment"].values()}
            assert secret in aliases or pointed, f"{service_name}: nothing reads {path}"


# --- environment ----------------------------------------------------------------------------


def _env_file_vars(path: Path) -> Iterator[str]:
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line.split("=", 1)[0].removeprefix("export ").strip()


def _env_file(reference: str | dict[str, Any]) -> Path:
    """The env file a service names; its template in secrets.example/ when not filled in."""
    path = ROOT / (reference["path"] if isinstance(reference, dict) else reference)
    return path if path.exists() else ENV_TEMPLATES / path.name


def test_every_environment_variable_is_a_setting_or_known() -> None:
    settings = setting_names()
    problems = []
    for name, service in _services().items():
        env = service.get("environment") or {}
        names = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        if _ours(service):
            for reference in service.get("env_file") or []:
                path = _env_file(reference)
                assert path.exists(), f"{name}: env_file {reference} (nor a template of it)"
                names += list(_env_file_vars(path))
            problems += [
                f"{name}: {var}" for var in names if var not in settings | NON_SETTING_VARS
            ]
        else:
            allowed = IMAGE_VARS.get(_image_name(service))
            problems += [
                f"{name}: {var}" for var in names if not (allowed and allowed.fullmatch(var))
            ]
    assert not problems, "not a setting (services.config) nor whitelisted:\n" + "\n".join(problems)


# --- commands -------------------------------------------------------------------------------


def _celery_options(command: Any) -> set[str]:
    return {
        opt
        for param in command.params
        for opt in (*getattr(param, "opts", []), *getattr(param, "secondary_opts", []))
        if opt.startswith("-")
    }


def check_celery(argv: list[str]) -> None:
    """A ``celery`` command line: real options, the real app module, real queues."""
    from celery.bin.beat import beat
    from celery.bin.celery import celery
    from celery.bin.control import inspect
    from celery.bin.worker import worker
    from celery.worker.control import Panel

    subcommands = {"worker": worker, "beat": beat, "inspect": inspect}
    words = argv[1:]
    at = next(i for i, word in enumerate(words) if word in subcommands)
    top, name, rest = words[:at], words[at], words[at + 1 :]
    for word in top:
        if word.startswith("-"):
            assert word.split("=")[0] in _celery_options(celery), f"celery option {word}"
    assert "-A" in top, f"no app module: {argv}"
    module = top[top.index("-A") + 1]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    assert re.search(r"^app = ", Path(spec.origin).read_text(), re.M), f"{module} has no app"
    known = _celery_options(subcommands[name])
    for word in rest:
        if word.startswith("-"):
            assert word.split("=")[0] in known, f"celery {name} has no option {word}"
    values = dict(itertools.pairwise(rest))
    if name == "worker":
        queues = (values.get("-Q") or values.get("--queues") or "").split(",")
        assert set(queues) <= set(QUEUES) and queues != [""], f"queues {queues}"
        int(values.get("-c") or values.get("--concurrency") or "1")
        assert "@" in (values.get("-n") or values.get("--hostname") or "@")
    if name == "inspect":
        positional = [
            w
            for w, prev in zip(rest, ["", *rest], strict=False)
            if not w.startswith("-") and not prev.startswith("-")
        ]
        assert positional and positional[0] in Panel.meta, f"inspect {positional}"


def check_command(argv: list[str], service: dict[str, Any] | None = None) -> None:
    """``argv`` runs something that exists, with options it accepts."""
    program = Path(argv[0]).name
    if program == "claims-ocr":
        try:
            _parser().parse_args(argv[1:])
        except SystemExit as exc:  # argparse refused the arguments
            raise AssertionError(f"claims-ocr refuses {argv[1:]}") from exc
    elif program == "celery":
        check_celery(argv)
    elif program in {"python", "python3"}:
        assert argv[1] == "-c", argv
        compile(argv[2], "<healthcheck>", "exec")
    else:
        image = _image_name(service) if service else ""
        assert program in IMAGE_EXECUTABLES.get(image, set()), f"unknown program {argv}"


def _shell_words(command: str) -> list[str]:
    """A CMD-SHELL line as words, with compose's ``$$`` escapes undone."""
    return shlex.split(command.replace("$$", "$"))


def _healthcheck_argv(test: list[str] | str) -> list[str]:
    if isinstance(test, str):
        return _shell_words(test)
    kind, *rest = test
    return _shell_words(rest[0]) if kind == "CMD-SHELL" else rest


def test_every_command_and_healthcheck_exists() -> None:
    queues_served: set[str] = set()
    for name, service in _services().items():
        if "command" in service and _ours(service):
            command = service["command"]
            argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
            check_command(argv, service)
            if "worker" in argv:
                queues_served |= set(argv[argv.index("-Q") + 1].split(","))
        assert "healthcheck" in service, f"{name}: no health check"
        try:
            check_command(_healthcheck_argv(service["healthcheck"]["test"]), service)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    assert queues_served == set(QUEUES), f"queues nobody consumes: {set(QUEUES) - queues_served}"


def test_check_command_refuses_what_does_not_exist() -> None:
    bad = [
        ["claims-ocr", "serve"],
        ["claims-ocr", "api", "--bind", "x"],
        ["celery", "-A", "workers.nothing", "worker", "-Q", "ocr"],
        ["celery", "-A", "workers.worker", "worker", "-Q", "gpu"],
        ["celery", "-A", "workers.worker", "worker", "--threads", "2"],
        ["celery", "-A", "workers.worker", "inspect", "pong"],
        ["gunicorn", "app"],
    ]
    for argv in bad:
        with pytest.raises(AssertionError):
            check_command(argv)


# --- what the services promise --------------------------------------------------------------


def test_services_restart_run_unprivileged_and_are_limited() -> None:
    for name, service in _services().items():
        assert service.get("restart") == "unless-stopped", name
        assert str(service.get("user", "root")).split(":")[0] not in {"root", "0"}, name
        assert service.get("read_only") is True, f"{name}: root filesystem not read-only"
        assert any(str(t).startswith("/tmp") for t in service.get("tmpfs", [])), name
        limits = service["deploy"]["resources"]["limits"]
        assert limits.get("memory") and limits.get("cpus"), f"{name}: no resource limits"
        assert service.get("cap_drop") == ["ALL"], name


def test_data_stores_sit_on_an_internal_network_only() -> None:
    compose = _compose()
    services = compose["services"]
    for store in ("redis", "postgres"):
        networks = services[store]["networks"]
        assert all(compose["networks"][n].get("internal") for n in networks), store
        assert "ports" not in services[store], f"{store} must not be published"


def test_redis_persists_and_never_evicts() -> None:
    command = " ".join(_services()["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_ocr_worker_reserves_the_gpu() -> None:
    service = _services()["ocr-worker"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert service["build"]["dockerfile"] == "Dockerfile.gpu"
    assert service["environment"]["OCR_DEVICE"] == "cuda"


# --- Dockerfiles ----------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _exec_or_shell(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_runs_what_exists(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    keywords = [k for k, _ in instructions]
    assert "USER" in keywords and "HEALTHCHECK" in keywords and "CMD" in keywords
    ignored = (ROOT / ".dockerignore").read_text().split()
    for keyword, arguments in instructions:
        if keyword == "COPY" and "--from=" not in arguments:
            *sources, _target = shlex.split(arguments)
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"
                assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"
        if keyword == "CMD":
            check_command(_exec_or_shell(arguments))
        if keyword == "HEALTHCHECK":
            command = arguments.split(" CMD ", 1)[1]
            check_command(_exec_or_shell(command))
        if keyword == "USER":
            assert arguments.split(":")[0] not in {"root", "0"}


def test_gpu_image_bakes_in_the_models() -> None:
    runs = [a for k, a in dockerfile_instructions(ROOT / "Dockerfile.gpu") if k == "RUN"]
    assert any("'.[gpu]'" in run for run in runs)
    loads = [run for run in runs if run.startswith("python -c")]
    assert loads, "no build-time model load"
    compile(shlex.split(loads[0])[2], "<model load>", "exec")


# --- docker compose itself ------------------------------------------------------------------


def _compose_cli() -> list[str]:
    docker = shutil.which("docker") or "/usr/local/bin/docker"
    if not Path(docker).exists():
        pytest.skip("no docker CLI")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    return [docker, "compose"]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """``docker compose config -q`` on a copy of the checkout with placeholder secrets."""
    compose = _compose_cli()
    for entry in ROOT.iterdir():
        if entry.name not in {"secrets", "claims-ocr.env"}:
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "secrets").mkdir()
    for secret in _compose()["secrets"].values():
        (tmp_path / secret["file"]).write_text("placeholder")
    shutil.copy(ENV_TEMPLATES / "claims-ocr.env", tmp_path / "claims-ocr.env")
    result = subprocess.run(
        [*compose, "-f", str(tmp_path / COMPOSE.name), "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
