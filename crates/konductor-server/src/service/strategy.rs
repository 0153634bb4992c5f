//! What differs in how the verbs treat one resource's objects — kube-apiserver keeps
//! such behaviour in a per-resource strategy: the verbs (the parent module) call these
//! hooks for every resource and carry no resource branches. Which resource has which
//! strategy is decided here alone ([`Strategy::of`]).

use serde_json::Value;

use super::{DeleteOptions, PROTECTED_NAMESPACES, Service};
use crate::crds;
use crate::error::{ApiError, Result};
use crate::objects;
use crate::registry::{self, NAMESPACES, ResourceDef, View};

/// How the verbs treat a resource's objects beyond what every resource shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Nothing more.
    Plain,
    /// The protected namespaces (`default`, `kube-system`) may not be deleted.
    Namespaces,
    /// A CRD is checked and given its status before it is stored; Konductor's own may
    /// not be deleted; deleting one deletes its objects first; every write changes what
    /// the server serves.
    CustomResourceDefinitions,
}

impl Strategy {
    /// The strategy of `def`'s objects.
    pub(super) fn of(def: &ResourceDef) -> Self {
        match def.storage.as_str() {
            crds::CRDS => Strategy::CustomResourceDefinitions,
            NAMESPACES => Strategy::Namespaces,
            _ => Strategy::Plain,
        }
    }

    /// Whether the object `name` may be deleted at all.
    pub(super) fn may_delete(self, def: &ResourceDef, name: &str) -> Result<()> {
        let refusal = match self {
            Strategy::Namespaces if PROTECTED_NAMESPACES.contains(&name) => {
                "this namespace may not be deleted"
            }
            Strategy::CustomResourceDefinitions if registry::built_in_crd(name).is_some() => {
                "Konductor's own kinds are built into this server"
            }
            _ => return Ok(()),
        };
        Err(ApiError::Forbidden {
            resource: def.qualified_plural(),
            name: name.to_owned(),
            message: refusal.into(),
        })
    }
}

impl Service {
    /// What the resource adds to the checks of an object about to be stored (`old`: its
    /// stored version, on an update): a CRD's checks and status ([`crds::admit`]).
    pub(super) fn admit_as_resource(
        &self,
        def: &ResourceDef,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<()> {
        if Strategy::of(def) != Strategy::CustomResourceDefinitions {
            return Ok(());
        }
        let name = objects::name_of(object).to_owned();
        crds::admit(object, old, registry::built_in_crd(&name).as_ref())
            .map_err(|causes| objects::invalid(def, &name, causes))
    }

    /// What deleting `current` takes first: a CRD's objects go before it.
    pub(super) fn before_delete(&self, def: &ResourceDef, current: &Value) -> Result<()> {
        if Strategy::of(def) == Strategy::CustomResourceDefinitions && !self.dry_run {
            self.delete_custom_resources(current)?;
        }
        Ok(())
    }

    /// After a committed write: the server serves what the stored CRDs say.
    pub(super) fn after_write(&self, def: &ResourceDef) -> Result<()> {
        if Strategy::of(def) == Strategy::CustomResourceDefinitions && !self.dry_run {
            self.reload_crds()?;
        }
        Ok(())
    }

    /// Deletes every object of a CRD about to be deleted, as kube-apiserver's CRD
    /// cleanup does (each one a normal delete: watchers see it, finalizers hold it).
    fn delete_custom_resources(&self, crd: &Value) -> Result<()> {
        let Some(def) = registry::served_resources(crd)
            .ok()
            .and_then(|defs| defs.into_iter().find(|d| d.view == View::Native))
        else {
            return Ok(());
        };
        let mut keys = Vec::new();
        self.store.scan(&def.storage, None, None, |object| {
            keys.push((
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                objects::name_of(&object).to_owned(),
            ));
            true
        })?;
        for (namespace, name) in keys {
            match self.delete(&def, &namespace, &name, &DeleteOptions::default()) {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
