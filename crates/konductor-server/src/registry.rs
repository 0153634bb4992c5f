//! The resources this server serves, each described once.
//!
//! Handlers, discovery, OpenAPI and tables are all driven from these descriptions;
//! nothing is written per type. Konductor's own resources are read from the generated
//! CRDs (`konductor_api::crd::crds()`), so the embedded server validates exactly what a
//! real cluster with those CRDs would.

use std::sync::Arc;

use serde_json::Value;

use crate::validation::Schema;

/// How objects of a resource are shown to clients, when that differs from storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Objects are served as stored.
    Native,
    /// events.k8s.io/v1 Events: stored as core v1 Events and converted both ways.
    EventsV1,
    /// Another served version of a custom resource: the stored objects under this
    /// version's `apiVersion` (a CRD's conversion strategy `None`).
    Relabelled {
        /// The `apiVersion` objects are stored with.
        stored_api_version: String,
    },
}

/// Where a resource's `/scale` subresource reads and writes (a CRD's
/// `subresources.scale`), as simple JSON paths such as `.spec.replicas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSpec {
    /// The desired replicas.
    pub spec_replicas_path: String,
    /// The observed replicas.
    pub status_replicas_path: String,
    /// The label selector (a string), if the resource publishes one.
    pub label_selector_path: Option<String>,
}

/// Where a table cell's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellSource {
    /// A JSONPath into the object, e.g. `.spec.expected` or
    /// `.status.conditions[?(@.type=="Ready")].status`: the first value it selects
    /// (`None` if the column's path does not parse: its cells are empty).
    Path(Option<konductor_api::jsonpath::JsonPath>),
    /// An Event's last occurrence as an age: `lastTimestamp`, else
    /// `series.lastObservedTime`, else `eventTime` (what events.k8s.io writers set).
    EventLastSeen,
    /// An Event's object as `kind/name`, lower-cased kind, as kubectl shows it.
    EventObject,
}

impl CellSource {
    /// The cells at `json_path` (as a CRD's `additionalPrinterColumns` gives it).
    pub fn path(json_path: &str) -> Self {
        CellSource::Path(konductor_api::jsonpath::JsonPath::parse(json_path).ok())
    }
}

/// One printer column for `kubectl get` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Where the value comes from.
    pub source: CellSource,
    /// Hidden unless `-o wide` when above 0.
    pub priority: i32,
    /// What the column shows.
    pub description: String,
}

/// Everything the server needs to know about one resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Barrier`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `barriers`.
    pub plural: String,
    /// Singular name, e.g. `barrier`.
    pub singular: String,
    /// Short names for kubectl, e.g. `bar`.
    pub short_names: Vec<String>,
    /// Categories for kubectl, e.g. `konductor`.
    pub categories: Vec<String>,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Whether a `/status` subresource splits spec and status writes.
    pub status_subresource: bool,
    /// The `/scale` subresource, if the resource has one.
    pub scale: Option<ScaleSpec>,
    /// The field selector labels it supports, each with the stored path it reads.
    pub field_labels: Vec<(String, String)>,
    /// The storage bucket; two resources sharing one (core and events.k8s.io Events)
    /// share objects and watch events.
    pub storage: String,
    /// How stored objects are presented.
    pub view: View,
    /// The OpenAPI schema (with CEL rules) objects must satisfy, for CRD-backed resources.
    pub schema: Option<Arc<Schema>>,
    /// Printer columns for tables (after the Name column).
    pub columns: Vec<Column>,
    /// Priority of the Name column: 0 shows it always, 1 only with `-o wide`.
    pub name_priority: i32,
    /// Whether `PUT` may omit `metadata.resourceVersion` (built-in types allow it;
    /// custom resources do not).
    pub unconditional_update: bool,
    /// Whether strategic merge patch is accepted. Kubernetes refuses it (415) for custom
    /// resources; for the built-in types served here it reduces to a JSON merge patch.
    pub strategic_merge: bool,
}

impl ResourceDef {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `name.group`, or just `name` in the core group.
    fn group_qualified(&self, name: &str) -> String {
        if self.group.is_empty() {
            name.to_owned()
        } else {
            format!("{name}.{}", self.group)
        }
    }

    /// `plural.group` (or just `plural` in the core group), as error messages name it.
    pub fn qualified_plural(&self) -> String {
        self.group_qualified(&self.plural)
    }

    /// `Kind.group` (or just `Kind`), as Invalid errors name it.
    pub fn qualified_kind(&self) -> String {
        self.group_qualified(&self.kind)
    }

    /// The kind of a list of these objects.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// All resources served, looked up by path and by storage bucket.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<Arc<ResourceDef>>,
}

pub use crate::key::NAMESPACES;
/// Storage bucket of Events (core v1 shape, also served as events.k8s.io/v1).
pub const EVENTS: &str = "events";
/// Storage bucket of Leases.
pub const LEASES: &str = "coordination.k8s.io/leases";

fn column(name: &str, type_: &str, json_path: &str, priority: i32, description: &str) -> Column {
    computed(
        name,
        type_,
        CellSource::path(json_path),
        priority,
        description,
    )
}

fn computed(
    name: &str,
    type_: &str,
    source: CellSource,
    priority: i32,
    description: &str,
) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        source,
        priority,
        description: description.into(),
    }
}

/// The Age column, for resources that declare no columns of their own.
pub fn age() -> Column {
    column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        0,
        "Time since the object was created",
    )
}

impl Registry {
    /// The standard registry: Konductor's CRDs plus the built-in types it needs.
    pub fn standard() -> Self {
        let mut resources: Vec<ResourceDef> = built_in_crds()
            .iter()
            .flat_map(|crd| served_resources(crd).expect("the generated CRDs are valid"))
            .collect();
        resources.extend(workloads());
        resources.extend(deployment_objects());
        resources.push(ResourceDef {
            short_names: vec!["ns".into()],
            namespaced: false,
            field_labels: field_labels(&["metadata.name"]),
            status_subresource: true,
            columns: vec![
                column(
                    "Status",
                    "string",
                    ".status.phase",
                    0,
                    "The namespace phase",
                ),
                age(),
            ],
            ..builtin("", "Namespace", "namespaces", NAMESPACES)
        });
        resources.push(ResourceDef {
            short_names: vec!["ev".into()],
            columns: vec![
                computed(
                    "Last Seen",
                    "string",
                    CellSource::EventLastSeen,
                    0,
                    "Time of the latest occurrence",
                ),
                column("Type", "string", ".type", 0, "Normal or Warning"),
                column("Reason", "string", ".reason", 0, "Why the event happened"),
                computed(
                    "Object",
                    "string",
                    CellSource::EventObject,
                    0,
                    "The object it is about",
                ),
                column(
                    "Source",
                    "string",
                    ".reportingComponent",
                    1,
                    "Who reported it",
                ),
                column("Message", "string", ".message", 0, "What happened"),
                column("Count", "integer", ".count", 1, "How often it happened"),
            ],
            name_priority: 1,
            field_labels: field_labels(CORE_EVENT_FIELDS),
            ..builtin("", "Event", "events", EVENTS)
        });
        resources.push(ResourceDef {
            short_names: vec!["ev".into()],
            view: View::EventsV1,
            columns: vec![
                column("Type", "string", ".type", 0, "Normal or Warning"),
                column("Reason", "string", ".reason", 0, "Why the event happened"),
                column(
                    "Object",
                    "string",
                    ".regarding.name",
                    0,
                    "The object it is about",
                ),
                column("Note", "string", ".note", 0, "What happened"),
                age(),
            ],
            // Selectors read the stored (core) shape: events.k8s.io names map onto it.
            field_labels: CORE_EVENT_FIELDS
                .iter()
                .map(|stored| {
                    let served = stored
                        .replace("involvedObject.", "regarding.")
                        .replace("reportingComponent", "reportingController");
                    (served, (*stored).to_owned())
                })
                .collect(),
            ..builtin("events.k8s.io", "Event", "events", EVENTS)
        });
        resources.push(ResourceDef {
            columns: vec![
                column(
                    "Holder",
                    "string",
                    ".spec.holderIdentity",
                    0,
                    "The current holder",
                ),
                age(),
            ],
            ..builtin("coordination.k8s.io", "Lease", "leases", LEASES)
        });
        resources.push(ResourceDef {
            namespaced: false,
            status_subresource: true,
            short_names: vec!["crd".into(), "crds".into()],
            categories: vec!["api-extensions".into()],
            columns: vec![column(
                "Created At",
                "date",
                ".metadata.creationTimestamp",
                0,
                "When the definition was created",
            )],
            ..builtin(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                CRDS,
            )
        });
        Registry {
            resources: resources.into_iter().map(Arc::new).collect(),
        }
    }

    /// This registry plus the resources of applied CRDs (Konductor's own kinds are
    /// built in and stay served as they are).
    #[must_use]
    pub fn with_applied(&self, applied: impl IntoIterator<Item = Arc<ResourceDef>>) -> Self {
        let mut resources = self.resources.clone();
        resources.extend(
            applied
                .into_iter()
                .filter(|def| self.find(&def.group, &def.version, &def.plural).is_none()),
        );
        Registry { resources }
    }

    /// Every resource served.
    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.resources
    }

    /// The resource at `/apis/{group}/{version}/{plural}` (`group` empty for `/api/v1`).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceDef>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resources of one group-version (empty if it is not served).
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceDef> {
        self.resources
            .iter()
            .map(AsRef::as_ref)
            .filter(|d| d.group == group && d.version == version)
            .collect()
    }

    /// The native (non-converted) resource of a storage bucket.
    pub fn by_storage(&self, storage: &str) -> Option<&Arc<ResourceDef>> {
        self.resources
            .iter()
            .find(|r| r.storage == storage && r.view == View::Native)
    }

    /// The distinct `(group, version)` pairs served, core first.
    pub fn group_versions(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for r in &self.resources {
            let pair = (r.group.as_str(), r.version.as_str());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        out.sort_by_key(|(g, _)| !g.is_empty());
        out
    }
}

/// A built-in, namespaced, `v1` resource with the API server's defaults for built-in
/// types (unconditional updates and strategic merge allowed, no schema).
/// Field labels read at the same path they are named by.
fn field_labels(labels: &[&str]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|l| ((*l).to_owned(), (*l).to_owned()))
        .collect()
}

/// What every namespaced resource can be selected by (custom resources too).
const OBJECT_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// What core v1 Events can be selected by (as in kube-apiserver).
const CORE_EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

fn builtin(group: &str, kind: &str, plural: &str, storage: &str) -> ResourceDef {
    ResourceDef {
        field_labels: field_labels(OBJECT_FIELDS),
        group: group.to_owned(),
        version: "v1".to_owned(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: vec![],
        categories: vec![],
        namespaced: true,
        status_subresource: false,
        scale: None,
        storage: storage.to_owned(),
        view: View::Native,
        schema: None,
        columns: vec![age()],
        name_priority: 0,
        unconditional_update: true,
        strategic_merge: true,
    }
}

/// Konductor's own CRDs as JSON, the definitions its kinds are served from (and the
/// only ones accepted for its group). Generating them is the costliest part of a
/// start: they are generated once and shared while anyone holds them (the server's
/// start does, across building the registry and storing them), then let go, so they
/// take no memory at rest.
pub fn built_in_crds() -> Arc<Vec<Value>> {
    static SHARED: std::sync::Mutex<std::sync::Weak<Vec<Value>>> =
        std::sync::Mutex::new(std::sync::Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(crds) = shared.upgrade() {
        return crds;
    }
    let crds = Arc::new(
        konductor_api::crd::crds()
            .iter()
            .map(|crd| serde_json::to_value(crd).expect("a CRD serializes"))
            .collect::<Vec<_>>(),
    );
    *shared = Arc::downgrade(&crds);
    crds
}

/// The built-in CRD named `name`, if there is one (only `konductor.io` names can be).
pub fn built_in_crd(name: &str) -> Option<Value> {
    if !name.ends_with(&format!(".{}", konductor_api::GROUP)) {
        return None;
    }
    built_in_crds()
        .iter()
        .find(|crd| crd["metadata"]["name"] == name)
        .cloned()
}

/// Field selectors every resource supports (custom resources too).
pub fn object_field_labels() -> Vec<(String, String)> {
    field_labels(OBJECT_FIELDS)
}

/// The workload kinds a Gate waits on, served as stored objects with a status
/// subresource and no controller (a script or test plays the Job or Deployment
/// controller), plus ConfigMaps, so ordinary manifests beside them apply.
fn workloads() -> Vec<ResourceDef> {
    vec![
        ResourceDef {
            status_subresource: true,
            columns: vec![
                column(
                    "Completions",
                    "integer",
                    ".status.succeeded",
                    0,
                    "Pods that succeeded",
                ),
                column("Failed", "integer", ".status.failed", 1, "Pods that failed"),
                age(),
            ],
            ..builtin("batch", "Job", "jobs", "batch/jobs")
        },
        ResourceDef {
            status_subresource: true,
            scale: Some(ScaleSpec {
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
                label_selector_path: None,
            }),
            short_names: vec!["deploy".into()],
            columns: vec![
                column(
                    "Ready",
                    "integer",
                    ".status.readyReplicas",
                    0,
                    "Ready replicas",
                ),
                column(
                    "Up-to-date",
                    "integer",
                    ".status.updatedReplicas",
                    0,
                    "Replicas updated to the current template",
                ),
                column(
                    "Available",
                    "integer",
                    ".status.availableReplicas",
                    0,
                    "Available replicas",
                ),
                age(),
            ],
            ..builtin("apps", "Deployment", "deployments", "apps/deployments")
        },
        ResourceDef {
            short_names: vec!["cm".into()],
            ..builtin("", "ConfigMap", "configmaps", "configmaps")
        },
    ]
}

/// What an operator's manifests hold beside its CRDs and Deployment (`kubectl apply
/// -k config/` applies them): stored as they are, never acted on — this server has one
/// token with full access and runs no Services.
fn deployment_objects() -> Vec<ResourceDef> {
    let rbac = "rbac.authorization.k8s.io";
    let cluster_scoped = |def: ResourceDef| ResourceDef {
        namespaced: false,
        ..def
    };
    vec![
        ResourceDef {
            short_names: vec!["sa".into()],
            ..builtin("", "ServiceAccount", "serviceaccounts", "serviceaccounts")
        },
        ResourceDef {
            short_names: vec!["svc".into()],
            status_subresource: true,
            ..builtin("", "Service", "services", "services")
        },
        builtin(rbac, "Role", "roles", "rbac.authorization.k8s.io/roles"),
        builtin(
            rbac,
            "RoleBinding",
            "rolebindings",
            "rbac.authorization.k8s.io/rolebindings",
        ),
        cluster_scoped(builtin(
            rbac,
            "ClusterRole",
            "clusterroles",
            "rbac.authorization.k8s.io/clusterroles",
        )),
        cluster_scoped(builtin(
            rbac,
            "ClusterRoleBinding",
            "clusterrolebindings",
            "rbac.authorization.k8s.io/clusterrolebindings",
        )),
    ]
}

/// Where applied CustomResourceDefinitions are stored (their bucket).
pub const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// The name of the version a CRD's objects are stored in.
pub(crate) fn storage_version(spec: &Value) -> Option<&str> {
    spec["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
}

/// The resources a stored CRD serves: one per served version, all sharing one storage
/// bucket (`group/plural`). Versions other than the storage version are the same
/// objects under another `apiVersion` (conversion strategy `None`).
pub fn served_resources(crd: &Value) -> Result<Vec<ResourceDef>, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let storage_version = storage_version(spec).ok_or("no storage version")?;
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut served = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() != Some(true) {
            continue;
        }
        let name = version["name"].as_str().unwrap_or_default();
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .map(|s| Schema::compile(s.clone()).map(Arc::new))
            .transpose()?;
        let mut columns: Vec<Column> = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Column {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                type_: c["type"].as_str().unwrap_or("string").to_owned(),
                source: CellSource::path(c["jsonPath"].as_str().unwrap_or_default()),
                priority: c["priority"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
                description: c["description"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        if columns.is_empty() {
            columns.push(age());
        }
        let subresources = &version["subresources"];
        let scale = &subresources["scale"];
        let view = if name == storage_version {
            View::Native
        } else {
            View::Relabelled {
                stored_api_version: format!("{group}/{storage_version}"),
            }
        };
        served.push(ResourceDef {
            group: group.to_owned(),
            version: name.to_owned(),
            kind: names["kind"].as_str().unwrap_or_default().to_owned(),
            plural: plural.to_owned(),
            singular: names["singular"].as_str().unwrap_or_default().to_owned(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: spec["scope"].as_str() == Some("Namespaced"),
            status_subresource: subresources.get("status").is_some_and(|s| !s.is_null()),
            scale: (!scale.is_null()).then(|| ScaleSpec {
                spec_replicas_path: scale["specReplicasPath"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                status_replicas_path: scale["statusReplicasPath"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                label_selector_path: scale["labelSelectorPath"].as_str().map(str::to_owned),
            }),
            field_labels: object_field_labels(),
            storage: format!("{group}/{plural}"),
            view,
            schema,
            columns,
            name_priority: 0,
            unconditional_update: false,
            strategic_merge: false,
        });
    }
    Ok(served)
}
