"""The official Kubernetes Python client and an OpenAPI validator against `konductor
server` ($KUBECONFIG): CRDs written elsewhere applied at run time and their objects used
through CustomObjectsApi and the dynamic client (discovery), Jobs, Deployments and
ConfigMaps through the typed clients, and every served OpenAPI v3 document — ours, the
built-in kinds' and the applied CRDs' — accepted by openapi-spec-validator (the check
client generators and API testers run first).

Run by run.sh, which starts a fresh server.
"""

import json
import os
import pathlib
import unittest

import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException
from openapi_spec_validator import validate

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "crates/konductor/tests/fixtures"
GROUP, VERSION, NAMESPACE = "acme.example.com", "v1", "default"


def setUpModule():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    extensions = client.ApiextensionsV1Api()
    for crd in yaml.safe_load_all((FIXTURES / "acme-crds.yaml").read_text()):
        created = extensions.create_custom_resource_definition(crd)
        names = created.status.accepted_names
        assert names.kind == crd["spec"]["names"]["kind"], names
    for event in watch.Watch().stream(
        extensions.list_custom_resource_definition, timeout_seconds=30
    ):
        crd = event["object"]
        if crd.metadata.name == f"databases.{GROUP}" and any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        ):
            break
    else:
        raise AssertionError("databases.acme.example.com never became Established")


def get_json(path):
    """GET a path of the server as JSON, with the client's credentials."""
    api = client.ApiClient()
    method, url, headers, body, _ = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, header_params=headers, body=body)
    response.read()
    return json.loads(response.data)


def database(name, **spec):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Database",
        "metadata": {"name": name},
        "spec": {"engine": "postgres", **spec},
    }


class OpenApi(unittest.TestCase):
    def test_every_served_document_is_valid_openapi(self):
        index = get_json("/openapi/v3")
        documents = sorted(index["paths"])
        for expected in ["api/v1", "apis/konductor.io/v1", "apis/batch/v1", f"apis/{GROUP}/{VERSION}"]:
            self.assertIn(expected, documents)
        for path in documents:
            with self.subTest(path=path):
                document = get_json(f"/openapi/v3/{path}")
                validate(document)
                for url, item in document["paths"].items():
                    declared = {p["name"] for p in item.get("parameters", [])}
                    for segment in ("{namespace}", "{name}"):
                        if segment in url:
                            self.assertIn(segment.strip("{}"), declared, url)


class CustomResources(unittest.TestCase):
    def setUp(self):
        self.objects = client.CustomObjectsApi()

    def test_create_read_patch_status_scale_and_delete(self):
        created = self.objects.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "databases", database("orders", config={"x": {"y": [1]}})
        )
        self.assertEqual(created["spec"]["replicas"], 1, "defaulted")
        self.assertEqual(created["spec"]["config"], {"x": {"y": [1]}}, "preserved island")
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "databases", "orders", {"spec": {"replicas": 2}}
        )
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, "databases", "orders",
            {"status": {"readyReplicas": 2, "selector": "app=orders"}},
        )
        scale = self.objects.get_namespaced_custom_object_scale(
            GROUP, VERSION, NAMESPACE, "databases", "orders"
        )
        self.assertEqual((scale["spec"]["replicas"], scale["status"]["replicas"]), (2, 2))
        self.objects.patch_namespaced_custom_object_scale(
            GROUP, VERSION, NAMESPACE, "databases", "orders", {"spec": {"replicas": 4}}
        )
        read = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "databases", "orders"
        )
        self.assertEqual(read["spec"]["replicas"], 4)
        self.assertEqual(read["metadata"]["generation"], 3)
        self.objects.delete_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "databases", "orders"
        )
        with self.assertRaises(ApiException) as gone:
            self.objects.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "databases", "orders"
            )
        self.assertEqual(gone.exception.status, 404)

    def test_invalid_objects_get_a_422_naming_the_field(self):
        with self.assertRaises(ApiException) as refused:
            self.objects.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "databases", database("bad", replicas=9)
            )
        self.assertEqual(refused.exception.status, 422)
        status = json.loads(refused.exception.body)
        self.assertEqual(status["reason"], "Invalid")
        self.assertIn("replicas may not exceed maxReplicas", status["message"])

    def test_a_watch_sees_changes(self):
        stream = watch.Watch()
        self.objects.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "databases", database("watched")
        )
        seen = []
        for event in stream.stream(
            self.objects.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, "databases",
            field_selector="metadata.name=watched", timeout_seconds=30,
        ):
            seen.append(event["type"])
            if event["type"] == "ADDED":
                self.objects.patch_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "databases", "watched", {"spec": {"replicas": 3}}
                )
            if event["type"] == "MODIFIED":
                self.assertEqual(event["object"]["spec"]["replicas"], 3)
                stream.stop()
        self.assertEqual(seen, ["ADDED", "MODIFIED"])

    def test_the_dynamic_client_discovers_applied_kinds(self):
        discovered = dynamic.DynamicClient(client.ApiClient())
        policies = discovered.resources.get(api_version=f"{GROUP}/v1", kind="ClusterPolicy")
        self.assertFalse(policies.namespaced)
        policies.create(body={
            "apiVersion": f"{GROUP}/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "audit"}, "spec": {"action": "Audit"},
        })
        beta = discovered.resources.get(api_version=f"{GROUP}/v1beta1", kind="ClusterPolicy")
        self.assertEqual(beta.get(name="audit").apiVersion, f"{GROUP}/v1beta1")
        databases = discovered.resources.get(api_version=f"{GROUP}/v1", kind="Database")
        self.assertIn("db", databases.short_names)


class Workloads(unittest.TestCase):
    def test_a_job_takes_its_status_from_whoever_plays_its_controller(self):
        batch = client.BatchV1Api()
        job = client.V1Job(
            metadata=client.V1ObjectMeta(name="extract"),
            spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                restart_policy="Never",
                containers=[client.V1Container(name="main", image="busybox:1.36")],
            ))),
        )
        batch.create_namespaced_job(NAMESPACE, job)
        batch.patch_namespaced_job_status("extract", NAMESPACE, {"status": {
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }})
        read = batch.read_namespaced_job("extract", NAMESPACE)
        self.assertEqual(read.status.succeeded, 1)
        self.assertEqual(read.status.conditions[0].type, "Complete")

    def test_deployments_and_config_maps_are_stored(self):
        apps, core = client.AppsV1Api(), client.CoreV1Api()
        deployment = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels={"app": "web"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": "web"}),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
                ),
            ),
        )
        apps.create_namespaced_deployment(NAMESPACE, deployment)
        apps.patch_namespaced_deployment_scale("web", NAMESPACE, {"spec": {"replicas": 3}})
        read = apps.read_namespaced_deployment("web", NAMESPACE)
        self.assertEqual((read.spec.replicas, read.metadata.generation), (3, 2))
        core.create_namespaced_config_map(
            NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"a": "b"})
        )
        self.assertEqual(core.read_namespaced_config_map("c", NAMESPACE).data, {"a": "b"})


if __name__ == "__main__":
    unittest.main()
