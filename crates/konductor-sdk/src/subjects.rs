//! What every kind's subject objects (a Barrier, a lock, a Once, a WaitGroup, a Gate)
//! share on the client side: create, create-if-absent, get, delete, list and wait in
//! one namespace, each failure named by kind, namespace and name. The lock kinds, which
//! the SDK handles as one family, are dynamic objects of their kind's resource.

use std::time::{Duration, Instant};

use konductor_api::locks::LockKind;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connect::Connection;
use crate::error::{Error, Request, Result};
use crate::waiting::{Progress, Waited, Waiting};

/// What a create-if-absent found: the object, and whether this call created it (a
/// `run` made on first use says so; one that found it compares its flags with it).
#[derive(Clone, Debug)]
pub struct Ensured<K> {
    /// The object as created or found.
    pub object: K,
    /// Whether this call created it.
    pub created: bool,
}

/// The objects of one subject kind in one namespace.
#[derive(Clone)]
pub(crate) struct Subjects<K> {
    pub client: Client,
    pub namespace: String,
    pub url: String,
    pub api: Api<K>,
    /// Its kind's API in every namespace.
    every_namespace: Api<K>,
    /// The kind as errors name it (`once`, `waitgroup`).
    kind: &'static str,
    /// Its plural (`onces`, `waitgroups`).
    resource: &'static str,
}

impl<K> Subjects<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    /// The `kind` objects (plural `resource`) in the connection's namespace.
    pub fn new(connection: &Connection, kind: &'static str, resource: &'static str) -> Self {
        let client = connection.client.clone();
        Self {
            api: Api::namespaced(client.clone(), &connection.namespace),
            every_namespace: Api::all(client.clone()),
            client,
            namespace: connection.namespace.clone(),
            url: connection.url.clone(),
            kind,
            resource,
        }
    }
}

impl Subjects<kube::api::DynamicObject> {
    /// The `kind` locks in `namespace`: the lock family's kinds are handled alike, as
    /// dynamic objects of their kind's resource.
    pub fn lock(client: &Client, url: &str, namespace: &str, kind: LockKind) -> Self {
        let resource = kind.api_resource();
        Self {
            api: Api::namespaced_with(client.clone(), namespace, &resource),
            every_namespace: Api::all_with(client.clone(), &resource),
            client: client.clone(),
            namespace: namespace.to_owned(),
            url: url.to_owned(),
            kind: kind.word(),
            resource: kind.plural(),
        }
    }
}

impl<K> Subjects<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    /// A request about the object `name` (`resource`: its kind's plural, or one of its
    /// claims'), to name it in an error.
    pub fn request<'a>(
        &'a self,
        name: &'a str,
        verb: &'static str,
        resource: &'static str,
    ) -> Request<'a> {
        Request {
            kind: self.kind,
            namespace: &self.namespace,
            name,
            verb,
            resource,
            url: &self.url,
        }
    }

    /// An error about `name` that is not the server's: what the SDK refuses to do.
    pub fn refused(&self, name: &str, message: impl Into<String>) -> Error {
        Error::Api {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            message: message.into(),
        }
    }

    /// [`Error::NotFound`] for `name`.
    pub fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: name.to_owned(),
        }
    }

    /// Creates `object`. [`Error::AlreadyExists`] if the name is taken,
    /// [`Error::Invalid`] (naming the field) if the server refuses the spec.
    pub async fn create(&self, object: &K) -> Result<K> {
        let name = object.name_any();
        self.api
            .create(&PostParams::default(), object)
            .await
            .map_err(|e| self.request(&name, "create", self.resource).error(e))
    }

    /// `object`, created if no object of its name exists (an existing one is returned
    /// as it is).
    pub async fn ensure(&self, object: &K) -> Result<Ensured<K>> {
        match self.create(object).await {
            Err(Error::AlreadyExists { .. }) => Ok(Ensured {
                object: self.get(&object.name_any()).await?,
                created: false,
            }),
            Ok(object) => Ok(Ensured {
                object,
                created: true,
            }),
            Err(error) => Err(error),
        }
    }

    /// The object `name`. [`Error::NotFound`] if absent.
    pub async fn get(&self, name: &str) -> Result<K> {
        match self.api.get(name).await {
            Ok(object) => Ok(object),
            Err(e) => {
                let error = self.request(name, "get", self.resource).error(e);
                Err(crate::error::explain_not_found(&self.client, error).await)
            }
        }
    }

    /// Merge-patches the object `name` (a spec field a verb sets: `sealed`,
    /// `override`).
    pub async fn patch(
        &self,
        name: &str,
        patch: &(impl serde::Serialize + std::fmt::Debug),
    ) -> Result<K> {
        match self
            .api
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
        {
            Ok(object) => Ok(object),
            Err(e) => {
                let error = self.request(name, "patch", self.resource).error(e);
                Err(crate::error::explain_not_found(&self.client, error).await)
            }
        }
    }

    /// Deletes the object `name` (its claims go with it).
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let error = self.request(name, "delete", self.resource).error(e);
                Err(crate::error::explain_not_found(&self.client, error).await)
            }
        }
    }

    /// The objects of the namespace (or of every namespace), by namespace and name.
    pub async fn list(&self, all_namespaces: bool) -> Result<Vec<K>> {
        let api = if all_namespaces {
            &self.every_namespace
        } else {
            &self.api
        };
        let mut items = api
            .list(&Default::default())
            .await
            .map_err(|e| self.request("*", "list", self.resource).error(e))?
            .items;
        items.sort_by_key(|item| (item.namespace(), item.name_any()));
        Ok(items)
    }

    /// Waits (watching, riding out reconnects and server restarts) until `finished`
    /// holds for the object `name` and returns it; `progress` hears every version on
    /// the way and why the object is missing — a wait for an object not created yet
    /// (or deleted while waited on) waits for it to be created. [`Error::StillWaiting`]
    /// (saying where it stood) when `timeout` passes first.
    pub async fn wait_until(
        &self,
        name: &str,
        timeout: Option<Duration>,
        progress: impl FnMut(Progress<'_, K>),
        finished: impl Fn(&K) -> bool,
        state: impl Fn(&K) -> String,
    ) -> Result<K>
    where
        K: Send + 'static,
    {
        let started = Instant::now();
        let waiting = Waiting {
            api: self.api.clone(),
            namespaces: Api::all(self.client.clone()),
            request: self.request(name, "watch", self.resource),
        };
        match waiting.until(timeout, progress, finished).await? {
            Waited::Finished(object) => Ok(object),
            Waited::TimedOut(last) => Err(Error::StillWaiting {
                kind: self.kind,
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                state: last
                    .as_ref()
                    .map_or_else(|| "not created".to_owned(), state),
                waited: started.elapsed(),
            }),
        }
    }
}
