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

use crate::error::{ApiError, Result};
use crate::objects::{
    self, DeleteOptions, FieldValidation, Subresource, decide_delete, finish_if_finalized,
    prepare_create, prepare_update,
};
use crate::patch::{self, PatchType};
use crate::registry::{NAMESPACES, Registry, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{ObjectKey, Store, Write};
use crate::views::{to_storage, to_view};
use crate::watch::{Route, Subscription, WatchEvent};

/// Namespaces that always exist: created at start, never deleted (as in Kubernetes).
const PROTECTED_NAMESPACES: [&str; 2] = ["default", "kube-system"];

/// How many stored objects a list reads per round trip to SQLite while filtering.
const LIST_BATCH: usize = 500;

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
}

impl ListOptions {
    /// Whether an object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
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
    registry: Arc<Registry>,
    /// `?dryRun=All`: run every check, store nothing, return what would be stored.
    dry_run: bool,
}

/// What the continue token of a paged list remembers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
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
            registry,
            dry_run: false,
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

    /// The registry of resources served.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn key(def: &ResourceDef, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if def.namespaced { namespace } else { "" };
        ObjectKey::new(def.storage, namespace, name)
    }

    fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::NotFound {
            resource: def.qualified_plural(),
            name: name.to_owned(),
        }
    }

    /// Creates the namespaces a fresh server starts with (`default`), if missing.
    pub fn bootstrap(&self) -> Result<()> {
        let namespaces = self
            .registry
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

    /// `GET` a collection: the matching objects as a `<Kind>List`, one page at a time.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<Value> {
        let resume = options
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_continue)
            .transpose()?;
        let namespace = namespace.filter(|_| def.namespaced);
        let mut cursor = resume.as_ref().map(|c| (c.ns.clone(), c.name.clone()));
        let mut snapshot_rv = resume.as_ref().map(|c| c.rv);
        let mut items = Vec::new();
        let mut next_cursor = None;
        'pages: loop {
            let page = self.store.list(
                def.storage,
                namespace,
                cursor.as_ref().map(|(ns, n)| (ns.as_str(), n.as_str())),
                Some(LIST_BATCH),
            )?;
            snapshot_rv.get_or_insert(page.resource_version);
            let exhausted = page.items.len() < LIST_BATCH;
            for object in page.items {
                let position = (
                    object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    objects::name_of(&object).to_owned(),
                );
                if options.limit.is_some_and(|limit| items.len() >= limit) {
                    // One more match exists past the page: hand out a continue token.
                    if options.matches(&object) {
                        next_cursor = cursor.clone();
                        break 'pages;
                    }
                } else if options.matches(&object) {
                    items.push(to_view(def, &object));
                }
                cursor = Some(position);
            }
            if exhausted {
                break;
            }
        }
        let resource_version = snapshot_rv.unwrap_or_else(|| self.store.resource_version());
        let mut metadata = json!({ "resourceVersion": resource_version.to_string() });
        if let Some((ns, name)) = next_cursor {
            metadata["continue"] = encode_continue(&Continue {
                rv: resource_version,
                ns,
                name,
            })
            .into();
        }
        Ok(json!({
            "apiVersion": def.api_version(),
            "kind": def.list_kind(),
            "metadata": metadata,
            "items": items,
        }))
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
        let mut object = prepare_create(
            self.native(def),
            namespace,
            with_api_version(def, body),
            Timestamp::now(),
        )?;
        let warnings = objects::admit(def, &mut object, None, validation)?;
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
        Ok(Written {
            object: shared_view(def, stored),
            warnings,
            created: true,
        })
    }

    /// The native definition of a bucket (for metadata rules on converted views).
    fn native<'a>(&'a self, def: &'a ResourceDef) -> &'a ResourceDef {
        self.registry.by_storage(def.storage).map_or(def, |d| d)
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
            prepare_update(self.native(def), current, body, subresource, true)
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
                object["metadata"]["name"] = name.into();
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
            prepare_update(self.native(def), current, patched, subresource, false)
        })
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
            if next == current {
                return Ok(Write::Unchanged(current));
            }
            Ok(self.preview(finish_if_finalized(next), Some(&current)))
        })?;
        let stored = stored.ok_or_else(|| Self::not_found(def, name))?;
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
        if def.storage == NAMESPACES && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden {
                resource: def.qualified_plural(),
                name: name.to_owned(),
                message: "this namespace may not be deleted".into(),
            });
        }
        let key = Self::key(def, namespace, name);
        let current = self
            .store
            .get(&key)?
            .ok_or_else(|| Self::not_found(def, name))?;
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
        Ok(to_view(def, &object))
    }

    /// `DELETE` a collection: every object matching the selectors.
    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        list: &ListOptions,
        options: &DeleteOptions,
    ) -> Result<Value> {
        let everything = ListOptions {
            limit: None,
            continue_token: None,
            ..list.clone()
        };
        let listed = self.list(def, namespace, &everything)?;
        let mut deleted = Vec::new();
        for object in listed["items"].as_array().into_iter().flatten() {
            let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
            match self.delete(def, ns, objects::name_of(object), options) {
                Ok(gone) => deleted.push(gone),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "apiVersion": def.api_version(),
            "kind": def.list_kind(),
            "metadata": { "resourceVersion": self.store.resource_version().to_string() },
            "items": deleted,
        }))
    }

    /// Starts a watch. Without a resourceVersion (or with "0") the current matching
    /// objects come first as ADDED events; otherwise events after that version are
    /// replayed from the hub's window (410 Expired if it is older).
    pub fn watch(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        resource_version: Option<&str>,
        options: &ListOptions,
    ) -> Result<WatchStart> {
        let requested = match resource_version {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("invalid resourceVersion {rv:?}: not a number"))
            })?),
        };
        let (initial, from) = match requested {
            Some(rv) => (Vec::new(), rv),
            None => {
                let all = ListOptions {
                    limit: None,
                    continue_token: None,
                    ..options.clone()
                };
                let listed = self.list(def, namespace, &all)?;
                let rv = listed["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let items = match listed.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                (items, rv)
            }
        };
        // A watch of one named object (`metadata.name=x` in a namespace, or of a
        // cluster-scoped kind) listens to that object's events only.
        let route = match (options.fields.name(), namespace.filter(|_| def.namespaced)) {
            (Some(name), Some(ns)) => Route::Object(ObjectKey::new(def.storage, ns, name)),
            (Some(name), None) if !def.namespaced => {
                Route::Object(ObjectKey::new(def.storage, "", name))
            }
            _ => Route::Bucket(def.storage.to_owned()),
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
        let Some(def) = self.registry.by_storage(&key.bucket).cloned() else {
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
        crate::registry::View::Native => stored,
        _ => Arc::new(to_view(def, &stored)),
    }
}

/// Sets `apiVersion` to the one of the stored shape for converted views.
fn with_api_version(def: &ResourceDef, mut object: Value) -> Value {
    if def.view != crate::registry::View::Native
        && let Some(map) = object.as_object_mut()
    {
        map.remove("apiVersion");
    }
    object
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
