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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Objects are served as stored.
    Native,
    /// events.k8s.io/v1 Events: stored as core v1 Events and converted both ways.
    EventsV1,
}

/// Where a table cell's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellSource {
    /// A simple JSONPath into the object, e.g. `.spec.expected`.
    Path(String),
    /// An Event's last occurrence as an age: `lastTimestamp`, else
    /// `series.lastObservedTime`, else `eventTime` (what events.k8s.io writers set).
    EventLastSeen,
    /// An Event's object as `kind/name`, lower-cased kind, as kubectl shows it.
    EventObject,
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
    pub group: &'static str,
    /// API version, e.g. `v1`.
    pub version: &'static str,
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
        CellSource::Path(json_path.into()),
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

fn age() -> Column {
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
        let mut resources: Vec<ResourceDef> = konductor_api::crd::crds()
            .into_iter()
            .map(crd_resource)
            .collect();
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
        Registry {
            resources: resources.into_iter().map(Arc::new).collect(),
        }
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
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in &self.resources {
            if !out.contains(&(r.group, r.version)) {
                out.push((r.group, r.version));
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

fn builtin(group: &'static str, kind: &str, plural: &str, storage: &str) -> ResourceDef {
    ResourceDef {
        field_labels: field_labels(OBJECT_FIELDS),
        group,
        version: "v1",
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: vec![],
        categories: vec![],
        namespaced: true,
        status_subresource: false,
        storage: storage.to_owned(),
        view: View::Native,
        schema: None,
        columns: vec![age()],
        name_priority: 0,
        unconditional_update: true,
        strategic_merge: true,
    }
}

/// A resource described by one of Konductor's generated CRDs.
fn crd_resource(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> ResourceDef {
    let version = &crd.spec.versions[0];
    let names = &crd.spec.names;
    // `group/plural`: the names a CRD is served under, so as stable as its API (a
    // bucket name is part of the database's keys).
    let storage = format!("{}/{}", crd.spec.group, names.plural);
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("CRD schema serializes"))
        .map(|s: Value| Arc::new(Schema::compile(s).expect("generated CRD schema compiles")));
    let mut columns: Vec<Column> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| Column {
            name: c.name.clone(),
            type_: c.type_.clone(),
            source: CellSource::Path(c.json_path.clone()),
            priority: c.priority.unwrap_or(0),
            description: c.description.clone().unwrap_or_default(),
        })
        .collect();
    if columns.is_empty() {
        columns.push(age());
    }
    ResourceDef {
        group: konductor_api::GROUP,
        version: konductor_api::VERSION,
        kind: names.kind.clone(),
        plural: names.plural.clone(),
        singular: names.singular.clone().unwrap_or_default(),
        short_names: names.short_names.clone().unwrap_or_default(),
        categories: names.categories.clone().unwrap_or_default(),
        namespaced: crd.spec.scope == "Namespaced",
        field_labels: field_labels(OBJECT_FIELDS),
        status_subresource: version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()),
        storage,
        view: View::Native,
        schema,
        columns,
        name_priority: 0,
        unconditional_update: false,
        strategic_merge: false,
    }
}
