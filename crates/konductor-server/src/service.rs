//! The API verbs — get, list, create, update, patch, delete, deletecollection, watch —
//! on top of the store, for any resource in the registry.
//!
//! This is where the pieces meet: [`objects`] decides metadata,
//! [`validation`](crate::validation) checks the schema, [`views`](crate::views) converts
//! shapes, and the [`store`](crate::store) makes it durable. HTTP handlers only parse
//! requests into these calls and render the results. All methods block on SQLite: call
//! them from `spawn_blocking`.

use std::sync::Arc;

use base64::Engine;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::crds;
use crate::error::{ApiError, Result};
use crate::key::ObjectKey;
use crate::objects::{
    self, DeleteOptions, FieldValidation, Subresource, decide_delete, finish_if_finalized,
    prepare_create, prepare_update,
};
use crate::patch::{self, PatchType};
use crate::registry::{self, NAMESPACES, Registry, ResourceDef, View};
use strategy::Strategy;

mod strategy;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Store, Write};
use crate::views::{to_storage, to_view};
use crate::watch::{Route, Subscription, WatchEvent};

/// Namespaces that always exist: created at start, never deleted (as in Kubernetes).
const PROTECTED_NAMESPACES: [&str; 2] = ["default", "kube-system"];

/// How many paged lists may hold their snapshot open at once; the oldest is let go
/// (its next page answers 410 Expired) when another starts.
const OPEN_SNAPSHOTS: usize = 32;

/// How long a paged list's snapshot is kept between pages.
const SNAPSHOT_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// How a list's `resourceVersion` is to be read (`resourceVersionMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMatch {
    /// At least as new as the version (the default for a non-zero version).
    NotOlderThan,
    /// Exactly that version.
    Exact,
}

/// Options of a list (and of the initial state of a watch).
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (page size); `None` for everything.
    pub limit: Option<usize>,
    /// `continue` token from the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`: how new the list must be (see `version_match`).
    pub resource_version: Option<u64>,
    /// `resourceVersionMatch`.
    pub version_match: Option<VersionMatch>,
}

/// One page of a list: objects in the requested view, all from one snapshot.
#[derive(Debug, Default)]
pub struct List {
    /// The objects.
    pub items: Vec<Value>,
    /// The snapshot's resourceVersion (the same on every page of one list).
    pub resource_version: u64,
    /// The token for the next page, if there is one.
    pub continue_token: Option<String>,
}

/// The snapshots of paged lists in progress, by id.
#[derive(Default)]
struct Snapshots {
    open: std::collections::HashMap<u64, (crate::store::Snapshot, std::time::Instant)>,
    next_id: u64,
}

impl ListOptions {
    /// Whether an object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

/// The served resources of each applied CRD, by CRD name, with the resourceVersion of
/// the CRD they were built from.
type AppliedCrds = std::collections::BTreeMap<String, (String, Vec<Arc<ResourceDef>>)>;

/// A write to a `/scale` subresource.
#[derive(Debug)]
pub enum ScaleChange {
    /// `PUT`: the whole Scale.
    Replace(Value),
    /// `PATCH`: a patch of the current Scale.
    Patch(PatchType, Vec<u8>),
}

/// An object written by a verb, with the warnings to send back (dropped unknown fields).
#[derive(Debug)]
pub struct Written {
    /// The object as stored, in the requested view (shared with the watch hub when
    /// the view is the stored shape).
    pub object: Arc<Value>,
    /// Warnings for the client.
    pub warnings: Vec<String>,
    /// Whether the write created the object (for 201 vs 200).
    pub created: bool,
}

/// The start of a watch: events to send first, then the live subscription.
pub struct WatchStart {
    /// Synthetic ADDED objects for a watch without a resourceVersion (or with "0").
    pub initial: Vec<Value>,
    /// The hub subscription (its backlog is sent before live events).
    pub subscription: Subscription,
    /// The resourceVersion the watch starts after.
    pub resource_version: u64,
}

/// The API verbs over a store and a registry. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    /// What is served now: the built-in resources plus those of the stored CRDs.
    registry: Arc<std::sync::RwLock<Arc<Registry>>>,
    /// The built-in resources alone, which applied CRDs are added to.
    built_in: Arc<Registry>,
    /// The resources of each applied CRD by name, with the resourceVersion they were
    /// built from (a rebuild compiles only the CRDs that changed). Held while the
    /// registry is rebuilt, so the last rebuild always reads the last CRD write.
    applied: Arc<std::sync::Mutex<AppliedCrds>>,
    /// `?dryRun=All`: run every check, store nothing, return what would be stored.
    dry_run: bool,
    /// Paged lists' snapshots, so every page of a list reads the same version.
    snapshots: Arc<std::sync::Mutex<Snapshots>>,
}

/// What the continue token of a paged list remembers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    /// The snapshot the list reads from.
    id: u64,
    /// The resourceVersion of the first page.
    rv: u64,
    /// The namespace of the last object returned.
    ns: String,
    /// The name of the last object returned.
    name: String,
}

impl Service {
    /// A service over `store`, serving the resources in `registry`.
    pub fn new(store: Store, registry: Arc<Registry>) -> Self {
        Self {
            store,
            registry: Arc::new(std::sync::RwLock::new(registry.clone())),
            built_in: registry,
            applied: Arc::default(),
            dry_run: false,
            snapshots: Arc::default(),
        }
    }

    /// The same service in dry-run mode (`?dryRun=All`): writes are validated and their
    /// result returned, but nothing is stored, published or garbage-collected.
    #[must_use]
    pub fn dry_run(&self) -> Self {
        Self {
            dry_run: true,
            ..self.clone()
        }
    }

    /// In dry-run mode, turns a write into its preview: the object that would be stored
    /// (or deleted), unchanged in storage.
    fn preview(&self, decision: Write, current: Option<&Value>) -> Write {
        match decision {
            Write::Put(object) if self.dry_run => Write::Unchanged(object),
            Write::Delete if self.dry_run => {
                Write::Unchanged(current.cloned().unwrap_or(Value::Null))
            }
            other => other,
        }
    }

    /// The store behind the service.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The registry of resources served now (a snapshot: CRD writes replace it).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds the registry from the stored CRDs: their kinds are served from now on,
    /// and a deleted CRD's no longer.
    pub fn reload_crds(&self) -> Result<()> {
        let mut applied = lock(&self.applied);
        let mut current = AppliedCrds::new();
        self.store.scan(crds::CRDS, None, None, |crd| {
            if crd["spec"]["group"] == konductor_api::GROUP {
                return true;
            }
            let name = objects::name_of(&crd).to_owned();
            let version = objects::resource_version_of(&crd).to_owned();
            let defs = match applied.remove(&name) {
                Some((built_from, defs)) if built_from == version => defs,
                _ => match registry::served_resources(&crd) {
                    Ok(defs) => defs.into_iter().map(Arc::new).collect(),
                    Err(error) => {
                        tracing::warn!(crd = name, %error, "a stored CRD cannot be served");
                        Vec::new()
                    }
                },
            };
            current.insert(name, (version, defs));
            true
        })?;
        *applied = current;
        let defs = applied.values().flat_map(|(_, defs)| defs.iter().cloned());
        let registry = Arc::new(self.built_in.with_applied(defs));
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = registry;
        Ok(())
    }

    fn key(def: &ResourceDef, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if def.namespaced { namespace } else { "" };
        ObjectKey::new(&def.storage, namespace, name)
    }

    fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: def.qualified_plural(),
            name: name.to_owned(),
        }
    }

    /// Creates the namespaces a fresh server starts with (`default`), if missing.
    pub fn bootstrap(&self) -> Result<()> {
        let registry = self.registry();
        let namespaces = registry
            .by_storage(NAMESPACES)
            .expect("namespaces are registered")
            .clone();
        for name in PROTECTED_NAMESPACES {
            let key = Self::key(&namespaces, "", name);
            if self.store.get(&key)?.is_none() {
                self.create(
                    &namespaces,
                    "",
                    json!({"metadata": {"name": name}}),
                    FieldValidation::Strict,
                )?;
            }
        }
        self.upgrade_built_in_crds(&registry)?;
        self.reload_crds()
    }

    /// Brings stored copies of Konductor's own CRDs (stored when someone applied them,
    /// as `kubectl apply -k config/` does) up to this version's definitions. Costs a
    /// scan of the stored CRDs, which is empty unless CRDs were applied.
    fn upgrade_built_in_crds(&self, registry: &Registry) -> Result<()> {
        let mut own = Vec::new();
        self.store.scan(crds::CRDS, None, None, |crd| {
            if crd["spec"]["group"] == konductor_api::GROUP {
                own.push(crd);
            }
            true
        })?;
        let Some(def) = registry.by_storage(crds::CRDS).cloned() else {
            return Ok(());
        };
        for stored in own {
            let name = objects::name_of(&stored).to_owned();
            let Some(built_in) = registry::built_in_crd(&name) else {
                continue;
            };
            if crds::defines_the_same(&stored, &built_in) {
                continue;
            }
            let mut current = stored;
            current["spec"] = built_in["spec"].clone();
            self.replace(
                &def,
                "",
                &name,
                current,
                Subresource::Main,
                FieldValidation::Strict,
            )?;
        }
        Ok(())
    }

    /// Fails with 404 (`namespaces "x" not found`) unless the namespace exists.
    fn ensure_namespace(&self, def: &ResourceDef, namespace: &str) -> Result<()> {
        if !def.namespaced {
            return Ok(());
        }
        let key = ObjectKey::new(NAMESPACES, "", namespace);
        match self.store.get(&key)? {
            Some(ns) if ns["metadata"].get("deletionTimestamp").is_none() => Ok(()),
            Some(_) => Err(ApiError::Conflict {
                resource: "namespaces".into(),
                name: namespace.into(),
                message: format!(
                    "namespace {namespace} is being terminated and cannot hold new objects"
                ),
            }),
            None => Err(ApiError::NotFound {
                resource: "namespaces".into(),
                name: namespace.into(),
            }),
        }
    }

    /// `GET` one object.
    pub fn get(&self, def: &ResourceDef, namespace: &str, name: &str) -> Result<Arc<Value>> {
        let stored = self
            .store
            .get(&Self::key(def, namespace, name))?
            .ok_or_else(|| Self::not_found(def, name))?;
        Ok(shared_view(def, stored))
    }

    /// `GET` a collection: the matching objects, one page at a time. Every page of one
    /// list reads the same snapshot (its read transaction is held open between pages,
    /// for up to two minutes); a `continue` token whose snapshot is gone is 410 Expired,
    /// as with etcd compaction.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<List> {
        let namespace = namespace.filter(|_| def.namespaced);
        let matching = |object: &Value| options.matches(object);
        if let Some(token) = &options.continue_token {
            let resume = decode_continue(token)?;
            let mut snapshots = lock(&self.snapshots);
            let Some((snapshot, _)) = snapshots.open.remove(&resume.id) else {
                return Err(ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                ));
            };
            drop(snapshots);
            let after = (resume.ns.as_str(), resume.name.as_str());
            return self.page(
                def,
                namespace,
                options,
                snapshot,
                Some(after),
                resume.id,
                &matching,
            );
        }
        let current = self.store.resource_version();
        match (options.resource_version, options.version_match) {
            (Some(wanted), Some(VersionMatch::Exact)) if wanted != current => {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {wanted} ({current}): this server lists only its current version exactly"
                )));
            }
            (Some(wanted), _) if wanted > current => {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {wanted}, current: {current}"
                )));
            }
            _ => {}
        }
        match options.limit {
            None => {
                let mut items = Vec::new();
                let resource_version =
                    self.store.scan(&def.storage, namespace, None, |object| {
                        if matching(&object) {
                            items.push(to_view(def, &object));
                        }
                        true
                    })?;
                Ok(List {
                    items,
                    resource_version,
                    continue_token: None,
                })
            }
            Some(_) => {
                let snapshot = self.store.snapshot()?;
                let id = {
                    let mut snapshots = lock(&self.snapshots);
                    snapshots.next_id += 1;
                    snapshots.next_id
                };
                self.page(def, namespace, options, snapshot, None, id, &matching)
            }
        }
    }

    /// Reads one page of a paged list from `snapshot` and keeps the snapshot for the
    /// next page if there is one.
    #[allow(clippy::too_many_arguments)]
    fn page(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        options: &ListOptions,
        snapshot: crate::store::Snapshot,
        after: Option<(&str, &str)>,
        id: u64,
        matching: &dyn Fn(&Value) -> bool,
    ) -> Result<List> {
        let limit = options.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        snapshot.scan(&def.storage, namespace, after, |object| {
            if !matching(&object) {
                return true;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            last = Some((
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                objects::name_of(&object).to_owned(),
            ));
            items.push(to_view(def, &object));
            true
        })?;
        let resource_version = snapshot.resource_version();
        let continue_token = match (more, last) {
            (true, Some((ns, name))) => {
                self.keep_snapshot(id, snapshot);
                Some(encode_continue(&Continue {
                    id,
                    rv: resource_version,
                    ns,
                    name,
                }))
            }
            _ => None,
        };
        Ok(List {
            items,
            resource_version,
            continue_token,
        })
    }

    /// Keeps a paged list's snapshot for its next page, letting the oldest and the
    /// stale ones go (their next pages answer 410).
    fn keep_snapshot(&self, id: u64, snapshot: crate::store::Snapshot) {
        let mut snapshots = lock(&self.snapshots);
        snapshots
            .open
            .retain(|_, (_, kept)| kept.elapsed() < SNAPSHOT_TTL);
        if snapshots.open.len() >= OPEN_SNAPSHOTS
            && let Some(oldest) = snapshots.open.keys().min().copied()
        {
            snapshots.open.remove(&oldest);
        }
        snapshots
            .open
            .insert(id, (snapshot, std::time::Instant::now()));
    }

    /// `POST` a new object.
    pub fn create(
        &self,
        def: &ResourceDef,
        namespace: &str,
        body: Value,
        validation: FieldValidation,
    ) -> Result<Written> {
        self.ensure_namespace(def, namespace)?;
        let body = to_storage(def, &body);
        let native = self.native(def);
        let mut object = prepare_create(
            native.as_deref().unwrap_or(def),
            namespace,
            with_api_version(def, body),
            Timestamp::now(),
        )?;
        let warnings = objects::admit(def, &mut object, None, validation)?;
        self.admit_as_resource(def, &mut object, None)?;
        let name = objects::name_of(&object).to_owned();
        let key = Self::key(def, namespace, &name);
        let stored = self.store.write(&key, |current| match current {
            Some(_) => Err(ApiError::AlreadyExists {
                resource: def.qualified_plural(),
                name: name.clone(),
            }),
            None => Ok(self.preview(Write::Put(object), None)),
        })?;
        let stored = stored.expect("a put returns the object");
        self.after_write(def)?;
        Ok(Written {
            object: shared_view(def, stored),
            warnings,
            created: true,
        })
    }

    /// The native definition of a converted view's bucket (for metadata rules), or
    /// `None` when `def` is native itself.
    fn native(&self, def: &ResourceDef) -> Option<Arc<ResourceDef>> {
        if def.view == View::Native {
            return None;
        }
        self.registry().by_storage(&def.storage).cloned()
    }

    /// `PUT` an object (or its status).
    pub fn replace(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        body: Value,
        subresource: Subresource,
        validation: FieldValidation,
    ) -> Result<Written> {
        let body = with_api_version(def, to_storage(def, &body));
        self.update_with(def, namespace, name, subresource, validation, |current| {
            let native = self.native(def);
            prepare_update(
                native.as_deref().unwrap_or(def),
                current,
                body,
                subresource,
                true,
            )
        })
    }

    /// `PATCH` an object (or its status). An apply patch creates a missing object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        subresource: Subresource,
        patch_type: PatchType,
        body: &[u8],
        validation: FieldValidation,
    ) -> Result<Written> {
        if patch_type == PatchType::Apply && subresource == Subresource::Main {
            let key = Self::key(def, namespace, name);
            if self.store.get(&key)?.is_none() {
                let mut object = patch::parse_apply_body(body)?;
                match object.get_mut("metadata") {
                    Some(Value::Object(metadata)) => {
                        metadata.insert("name".into(), name.into());
                    }
                    None | Some(Value::Null) => {
                        object["metadata"] = json!({ "name": name });
                    }
                    Some(_) => {
                        return Err(ApiError::BadRequest("metadata: must be an object".into()));
                    }
                }
                return match self.create(def, namespace, object, validation) {
                    Err(ApiError::AlreadyExists { .. }) => self.patch(
                        def,
                        namespace,
                        name,
                        subresource,
                        patch_type,
                        body,
                        validation,
                    ),
                    other => other,
                };
            }
        }
        self.update_with(def, namespace, name, subresource, validation, |current| {
            let view = to_view(def, current);
            let patched = patch::apply(patch_type, &view, body)?;
            let patched = with_api_version(def, to_storage(def, &patched));
            let native = self.native(def);
            let native = native.as_deref().unwrap_or(def);
            prepare_update(native, current, patched, subresource, false)
        })
    }

    /// `GET` an object's `/scale`.
    pub fn scale(&self, def: &ResourceDef, namespace: &str, name: &str) -> Result<Value> {
        crate::scale::of(def, &*self.get(def, namespace, name)?)
    }

    /// `PUT` (a whole Scale) or `PATCH` an object's `/scale`: the desired replicas
    /// are written to the object, which is validated as any write of it is.
    pub fn update_scale(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        change: ScaleChange,
    ) -> Result<Value> {
        let written = self.update_with(
            def,
            namespace,
            name,
            Subresource::Main,
            FieldValidation::Ignore,
            |current| {
                let view = to_view(def, current);
                let wanted = match &change {
                    ScaleChange::Replace(scale) => scale.clone(),
                    ScaleChange::Patch(patch_type, body) => {
                        patch::apply(*patch_type, &crate::scale::of(def, &view)?, body)?
                    }
                };
                let next = crate::scale::apply(def, &view, &wanted)?;
                let next = with_api_version(def, to_storage(def, &next));
                let native = self.native(def);
                let native = native.as_deref().unwrap_or(def);
                prepare_update(native, current, next, Subresource::Main, false)
            },
        )?;
        crate::scale::of(def, &written.object)
    }

    /// Reads, transforms with `change`, validates and writes one object.
    fn update_with(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        subresource: Subresource,
        validation: FieldValidation,
        change: impl FnOnce(&Value) -> Result<Value>,
    ) -> Result<Written> {
        let key = Self::key(def, namespace, name);
        let mut warnings = Vec::new();
        let stored = self.store.write(&key, |current| {
            let Some(current) = current else {
                return Err(Self::not_found(def, name));
            };
            let mut next = change(&current)?;
            let check = if subresource == Subresource::Status {
                FieldValidation::Ignore
            } else {
                validation
            };
            warnings = objects::admit(def, &mut next, Some(&current), check)?;
            self.admit_as_resource(def, &mut next, Some(&current))?;
            if next == current {
                return Ok(Write::Unchanged(current));
            }
            Ok(self.preview(finish_if_finalized(next), Some(&current)))
        })?;
        let stored = stored.ok_or_else(|| Self::not_found(def, name))?;
        self.after_write(def)?;
        Ok(Written {
            object: shared_view(def, stored),
            warnings,
            created: false,
        })
    }

    /// `DELETE` one object; returns its last state (or its state marked for deletion
    /// when finalizers are pending).
    pub fn delete(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value> {
        if !self.dry_run && options.dry_run.iter().any(|d| d == "All") {
            return self.dry_run().delete(def, namespace, name, options);
        }
        Strategy::of(def).may_delete(def, name)?;
        let key = Self::key(def, namespace, name);
        let current = self
            .store
            .get(&key)?
            .ok_or_else(|| Self::not_found(def, name))?;
        self.before_delete(def, &current)?;
        let uid = current["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match options.propagation_policy.as_deref() {
            _ if self.dry_run => {}
            Some("Orphan") => self.orphan_dependents(&uid)?,
            Some("Foreground") => self.delete_dependents(&uid)?,
            None | Some("Background") => {}
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "propagationPolicy: unsupported value {other:?}: must be Orphan, Foreground or Background"
                )));
            }
        }
        let result = self.store.write(&key, |current| match current {
            None => Err(Self::not_found(def, name)),
            Some(current) => {
                let decision = decide_delete(def, current.clone(), options, Timestamp::now())?;
                Ok(self.preview(decision, Some(&current)))
            }
        })?;
        let object = result.ok_or_else(|| Self::not_found(def, name))?;
        self.after_write(def)?;
        Ok(to_view(def, &object))
    }

    /// `DELETE` a collection: every object matching the selectors.
    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        list: &ListOptions,
        options: &DeleteOptions,
    ) -> Result<List> {
        let everything = ListOptions {
            limit: None,
            continue_token: None,
            ..list.clone()
        };
        let listed = self.list(def, namespace, &everything)?;
        let mut deleted = Vec::new();
        for object in &listed.items {
            let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
            match self.delete(def, ns, objects::name_of(object), options) {
                Ok(gone) => deleted.push(gone),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(List {
            items: deleted,
            resource_version: self.store.resource_version(),
            continue_token: None,
        })
    }

    /// Starts a watch. Without a resourceVersion (or with "0") the current matching
    /// objects come first as ADDED events; otherwise events after that version are
    /// replayed from the hub's window (410 Expired if it is older).
    pub fn watch(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<WatchStart> {
        let requested = options.resource_version.filter(|rv| *rv != 0);
        let (initial, from) = match requested {
            Some(rv) => (Vec::new(), rv),
            None => {
                let all = ListOptions {
                    limit: None,
                    continue_token: None,
                    resource_version: None,
                    version_match: None,
                    ..options.clone()
                };
                let listed = self.list(def, namespace, &all)?;
                (listed.items, listed.resource_version)
            }
        };
        // A watch of one named object (`metadata.name=x` in a namespace, or of a
        // cluster-scoped kind) listens to that object's events only; one whose selector
        // requires a label value, to the events of objects with that label.
        let route = match (options.fields.name(), namespace.filter(|_| def.namespaced)) {
            (Some(name), Some(ns)) => Route::Object(ObjectKey::new(&def.storage, ns, name)),
            (Some(name), None) if !def.namespaced => {
                Route::Object(ObjectKey::new(&def.storage, "", name))
            }
            _ => match options.labels.required_value() {
                Some((key, value)) => Route::Label {
                    bucket: def.storage.clone(),
                    key: key.to_owned(),
                    value: value.to_owned(),
                },
                None => Route::Bucket(def.storage.clone()),
            },
        };
        let subscription = self
            .store
            .hub()
            .subscribe(from, &route)
            .map_err(|e| ApiError::Expired(e.to_string()))?;
        Ok(WatchStart {
            initial,
            subscription,
            resource_version: from,
        })
    }

    /// Removes the ownerReference to `owner_uid` from every dependent (Orphan).
    fn orphan_dependents(&self, owner_uid: &str) -> Result<()> {
        for key in self.store.dependents(owner_uid)? {
            self.store.write(&key, |current| {
                let Some(mut object) = current else {
                    return Ok::<_, ApiError>(Write::Delete);
                };
                if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
                }
                Ok(Write::Put(object))
            })?;
        }
        Ok(())
    }

    /// Deletes every dependent of `owner_uid` now (Foreground).
    fn delete_dependents(&self, owner_uid: &str) -> Result<()> {
        for key in self.store.dependents(owner_uid)? {
            self.delete_key(&key)?;
        }
        Ok(())
    }

    /// Deletes the object at `key` with default options (garbage collection).
    pub fn delete_key(&self, key: &ObjectKey) -> Result<()> {
        let Some(def) = self.registry().by_storage(&key.bucket).cloned() else {
            return Ok(());
        };
        match self.delete(&def, &key.namespace, &key.name, &DeleteOptions::default()) {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a hub event belongs to a watch of `def` in `namespace` (all when `None`).
    pub fn event_in_scope(def: &ResourceDef, namespace: Option<&str>, event: &WatchEvent) -> bool {
        event.key.bucket == def.storage
            && namespace.is_none_or(|ns| !def.namespaced || event.key.namespace == ns)
    }
}

/// A stored object in the shape `def` serves, without a copy when that is the stored
/// shape.
fn shared_view(def: &ResourceDef, stored: Arc<Value>) -> Arc<Value> {
    match def.view {
        View::Native => stored,
        _ => Arc::new(to_view(def, &stored)),
    }
}

/// Sets `apiVersion` to the one of the stored shape for converted views.
fn with_api_version(def: &ResourceDef, mut object: Value) -> Value {
    if def.view != View::Native
        && let Some(map) = object.as_object_mut()
    {
        map.remove("apiVersion");
    }
    object
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn encode_continue(token: &Continue) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(token).expect("continue tokens serialize"))
}

fn decode_continue(token: &str) -> Result<Continue> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("invalid continue token {token:?}")))
}
