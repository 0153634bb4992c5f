//! Gates: wait until conditions on other resources hold.
//!
//! [`Gates`] manages Gate objects (the controller watches their conditions and
//! writes where they stand; anyone waits on the Gate alone). [`WaitFor`] waits for the
//! same conditions with no Gate object — a `kubectl wait` with OR, fail-fast, waiting
//! for creation and generation awareness — by watching the objects itself and judging
//! them with the very rules the controller uses.
//!
//! ```no_run
//! # async fn example(connection: konductor_sdk::Connection) -> konductor_sdk::Result<()> {
//! use konductor_sdk::gate::wait_for;
//! let status = wait_for(&connection)
//!     .target("job/migrate")
//!     .await?
//!     .target("barrier/etl-done")
//!     .await?
//!     .wait(None, |_| {})
//!     .await?;
//! println!("{}: {}", status.phase, status.summary());
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use konductor_api::gate::presets::PRESET_KINDS;
use konductor_api::gate::rules::{GateInput, Observations, Observed, evaluate, targets};
use konductor_api::gate::target::KindUnusable;
use konductor_api::gate::target::{parse_for, parse_resume};
use konductor_api::gate::{
    Gate, GateCondition, GateMatch, GateOverride, GatePhase, GateSpec, GateStatus, TargetRef,
};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use crate::connect::Connection;
use crate::error::{Error, Result};
use crate::patches::SpecPatch;
use crate::subjects::Subjects;
use crate::watching::follow;

/// The Gates of one namespace.
#[derive(Clone)]
pub struct Gates {
    gates: Subjects<Gate>,
    connection: Connection,
}

impl Gates {
    /// The Gates in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            gates: Subjects::new(connection, "gate", "gates"),
            connection: connection.clone(),
        }
    }

    /// A Gate `name` to describe, then create:
    /// `gates.build("b-may-start").target("job/a").await?.resume("job/b").await?.create().await?`.
    pub fn build(&self, name: &str) -> NewGate {
        NewGate {
            gates: self.clone(),
            name: name.to_owned(),
            spec: GateSpec::default(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.gates.namespace
    }

    fn object(name: &str, spec: GateSpec) -> Gate {
        Gate::new(name, spec)
    }

    /// Creates the Gate `name`.
    pub async fn create(&self, name: &str, spec: GateSpec) -> Result<Gate> {
        self.gates.create(&Self::object(name, spec)).await
    }

    /// The Gate `name`, created with `spec` if absent.
    pub async fn ensure(&self, name: &str, spec: GateSpec) -> Result<crate::Ensured<Gate>> {
        self.gates.ensure(&Self::object(name, spec)).await
    }

    /// The Gate `name` once the controller has looked at every object it names (or
    /// `within` passed, or it is gone): for saying at once what it cannot read.
    pub async fn first_look(&self, name: &str, within: Duration) -> Option<Gate> {
        let looked = crate::watching::follow_until(self.gates.api.clone(), name, |gate: &Gate| {
            gate.status
                .as_ref()
                .is_some_and(|s| !s.results.is_empty() && s.results.iter().all(|r| r.looked_at()))
        });
        tokio::time::timeout(within, looked).await.ok()?.ok()?
    }

    /// The Gate `name`.
    pub async fn get(&self, name: &str) -> Result<Gate> {
        self.gates.get(name).await
    }

    /// Deletes the Gate `name`.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.gates.delete(name).await
    }

    /// The Gates of the namespace (or of every namespace).
    pub async fn list(&self, all_namespaces: bool) -> Result<Vec<Gate>> {
        self.gates.list(all_namespaces).await
    }

    /// Sets `spec.override` (`None` hands the Gate back to its conditions).
    pub async fn set_override(&self, name: &str, value: Option<GateOverride>) -> Result<Gate> {
        let patch = SpecPatch::new(Override {
            override_: value.as_ref(),
        });
        self.gates.patch(name, &patch).await
    }

    /// Waits (watching, riding out reconnects and server restarts) until the Gate is
    /// Open, Failed or Timeout and returns it; `progress` sees every version on the
    /// way. [`Error::StillWaiting`] when `timeout` passes first, [`Error::NotFound`] if
    /// the Gate does not exist or is deleted.
    pub async fn wait(
        &self,
        name: &str,
        timeout: Option<Duration>,
        progress: impl FnMut(crate::waiting::Progress<'_, Gate>),
    ) -> Result<Gate> {
        self.gates
            .wait_until(
                name,
                timeout,
                progress,
                |gate| gate.phase().is_finished(),
                |gate| {
                    let status = gate.status.clone().unwrap_or_default();
                    format!("{}: {}", status.phase, status.summary())
                },
            )
            .await
    }
}

/// A Gate being described before it is created ([`Gates::build`]): its conditions, the
/// objects it resumes, its timeout.
pub struct NewGate {
    gates: Gates,
    name: String,
    spec: GateSpec,
}

impl NewGate {
    /// Adds a condition from a `--for` value (see [`condition_for`]).
    pub async fn target(mut self, text: &str) -> Result<Self> {
        let condition = condition_for(&self.gates.connection, text).await?;
        self.spec.conditions.push(condition);
        Ok(self)
    }

    /// Adds an object to resume when the Gate opens, from a `--resume` value (see
    /// [`resume_target`]); the object must opt in with the annotation
    /// `konductor.io/resume-by: <the Gate's name>`.
    pub async fn resume(mut self, text: &str) -> Result<Self> {
        let target = resume_target(&self.gates.connection, text).await?;
        self.spec.resume.push(target);
        Ok(self)
    }

    /// One condition met is enough (the default is all of them).
    pub fn any(mut self) -> Self {
        self.spec.match_ = GateMatch::Any;
        self
    }

    /// How long the Gate may wait, from its creation, as a Go duration (`30m`).
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.spec.timeout = Some(timeout.to_owned());
        self
    }

    /// The spec described so far.
    pub fn spec(&self) -> &GateSpec {
        &self.spec
    }

    /// Creates the Gate.
    pub async fn create(self) -> Result<Gate> {
        self.gates.create(&self.name, self.spec).await
    }
}

/// Turns a `--for` value (`job/migrate`, `deploy/web=condition=Available`,
/// `databases.acme.example.com/db=jsonpath={.status.phase}=Ready`) into a condition,
/// asking the server's discovery what the kind is, as kubectl does.
/// A test its kind cannot have (no preset and no test given, two tests…) is
/// [`Error::Usage`]; a kind the server does not serve is [`Error::Argument`].
pub async fn condition_for(connection: &Connection, text: &str) -> Result<GateCondition> {
    let usage = |message: String| Error::Usage {
        argument: text.to_owned(),
        message,
    };
    let parsed = parse_for(text).map_err(usage)?;
    let (api_version, kind) = kind_of_argument(connection, text, &parsed.resource).await?;
    let mut condition = parsed.condition;
    condition.target.api_version = api_version;
    condition.target.kind = kind;
    konductor_api::gate::rules::check_condition(&condition).map_err(|why| {
        usage(match why.strip_prefix("condition: ") {
            Some(why) if why.contains("has no preset") => format!(
                "{} {} has no preset: give a test ({text}=condition=TYPE[=STATUS] or {text}=jsonpath=EXPR[=VALUE])",
                condition.target.api_version, condition.target.kind
            ),
            Some(why) => why.to_owned(),
            None => why,
        })
    })?;
    Ok(condition)
}

/// Turns a `--resume` value (`job/b`, `jobsets.jobset.x-k8s.io/train`) into the object
/// a Gate resumes, asking the server's discovery what the kind is. A malformed value is
/// [`Error::Usage`]; a kind the server does not serve is [`Error::Argument`].
pub async fn resume_target(connection: &Connection, text: &str) -> Result<TargetRef> {
    let (resource, name) = parse_resume(text).map_err(|message| Error::Usage {
        argument: text.to_owned(),
        message,
    })?;
    let (api_version, kind) = kind_of_argument(connection, text, &resource).await?;
    Ok(TargetRef {
        api_version,
        kind,
        name,
    })
}

/// Why the Gate `gate` will not resume `target` as things stand, if it can tell: the
/// object exists but does not opt in (`konductor.io/resume-by: <gate>`) or is not
/// suspended. `None` when it will be resumed, does not exist yet, or cannot be read
/// with the caller's credentials (the controller reads it with its own).
pub async fn resume_warning(
    connection: &Connection,
    gate: &str,
    target: &TargetRef,
) -> Option<String> {
    use konductor_api::gate::resume::RESUME_BY;
    let gvk = GroupVersionKind::gvk(target.group(), target.version(), &target.kind);
    let (resource, _) = kube::discovery::pinned_kind(&connection.client, &gvk)
        .await
        .ok()?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(connection.client.clone(), &connection.namespace, &resource);
    let object = api.get_opt(&target.name).await.ok()??;
    let opted_in = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESUME_BY))
        .is_some_and(|by| by == gate);
    if !opted_in {
        return Some(format!(
            "{target} has no {RESUME_BY}: {gate} annotation, so it will not be resumed (kubectl annotate {} {} {RESUME_BY}={gate})",
            target.kind.to_lowercase(),
            target.name
        ));
    }
    if object.data["spec"]["suspend"].as_bool() != Some(true) {
        return Some(format!(
            "{target} is not suspended (spec.suspend: true): it runs without waiting for the Gate"
        ));
    }
    None
}

/// [`resolve_kind`] for the `resource` of the argument `text`, its failure as the SDK
/// error naming the argument.
async fn kind_of_argument(
    connection: &Connection,
    text: &str,
    resource: &str,
) -> Result<(String, String)> {
    resolve_kind(connection, resource)
        .await
        .map_err(|unresolved| match unresolved {
            Unresolved::Unknown(message) => Error::Argument {
                argument: text.to_owned(),
                message,
            },
            Unresolved::Discovery(error) => discovery_error(connection, text, error),
        })
}

/// Why a resource name did not resolve to a kind.
#[derive(Debug)]
pub enum Unresolved {
    /// The server has no such resource type.
    Unknown(String),
    /// Discovery itself failed (the server unreachable, the request refused).
    Discovery(kube::Error),
}

/// The SDK error for a failed discovery request made for the argument `text`.
fn discovery_error(connection: &Connection, text: &str, error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) => Error::Argument {
            argument: text.to_owned(),
            message: format!("discovery refused: {}", status.message),
        },
        other => crate::error::Request {
            kind: "wait",
            namespace: &connection.namespace,
            name: text,
            verb: "get",
            resource: "discovery",
            url: &connection.url,
        }
        .error(other),
    }
}

/// The apiVersion and kind `resource` names (`job`, `jobs`, `deploy`, `Job`,
/// `jobs.batch`, `jobs.v1.batch`, `databases.acme.example.com`): a preset's kind by its
/// plural or singular without asking, anything else from the server's discovery —
/// plural, singular, kind or short name, optionally qualified by the group or by
/// version and group (else the group's preferred version).
pub async fn resolve_kind(
    connection: &Connection,
    resource: &str,
) -> std::result::Result<(String, String), Unresolved> {
    let client = &connection.client;
    let wanted = QualifiedResource::parse(resource);
    let (name, group) = (wanted.name.as_str(), wanted.group.as_deref());
    let preset = PRESET_KINDS.iter().find(|k| {
        (k.resource == name || k.kind.to_ascii_lowercase() == name)
            && group.is_none_or(|g| g == k.group)
    });
    if let Some(preset) = preset {
        let version = if preset.group == konductor_api::GROUP {
            konductor_api::VERSION
        } else {
            "v1"
        };
        if wanted.version.as_deref().is_none_or(|v| v == version) {
            return Ok((
                format!("{}/{version}", preset.group),
                preset.kind.to_owned(),
            ));
        }
    }
    let discovery = Unresolved::Discovery;
    let mut versions = Vec::new();
    if let (Some(version), Some(group)) = (&wanted.version, group) {
        versions.push(format!("{group}/{version}"));
    } else {
        if group.is_none_or(str::is_empty) {
            versions.push("v1".to_owned());
        }
        for api_group in client.list_api_groups().await.map_err(discovery)?.groups {
            if group.is_some_and(|g| g != api_group.name) {
                continue;
            }
            if let Some(preferred) = api_group
                .preferred_version
                .or_else(|| api_group.versions.first().cloned())
            {
                versions.push(preferred.group_version);
            }
        }
    }
    for group_version in versions {
        let list = if group_version == "v1" {
            client.list_core_api_resources("v1").await
        } else {
            match client.list_api_group_resources(&group_version).await {
                // A version asked for by name that the server does not serve.
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                other => other,
            }
        }
        .map_err(discovery)?;
        let found = list.resources.iter().find(|r| {
            !r.name.contains('/')
                && (r.name == name
                    || r.singular_name == name
                    || r.kind.to_ascii_lowercase() == name
                    || r.short_names.iter().flatten().any(|s| *s == name))
        });
        if let Some(found) = found {
            if !found.namespaced {
                return Err(Unresolved::Unknown(format!(
                    "{} is cluster-scoped: only objects in a namespace can be waited for",
                    found.name
                )));
            }
            return Ok((group_version, found.kind.clone()));
        }
    }
    Err(Unresolved::Unknown(format!(
        "the server has no resource type {resource:?} (kubectl api-resources lists them)"
    )))
}

/// A resource as kubectl accepts it: `name`, `name.group` or `name.version.group`.
#[derive(Debug, PartialEq)]
struct QualifiedResource {
    name: String,
    version: Option<String>,
    group: Option<String>,
}

impl QualifiedResource {
    /// Reads `resource` (any case); a second part that looks like a Kubernetes version
    /// (`v1`, `v2beta1`) followed by more is the version, else all after the first dot
    /// is the group.
    fn parse(resource: &str) -> Self {
        let resource = resource.to_ascii_lowercase();
        let Some((name, rest)) = resource.split_once('.') else {
            return Self {
                name: resource,
                version: None,
                group: None,
            };
        };
        let (version, group) = match rest.split_once('.') {
            Some((version, group)) if is_version(version) => (Some(version.to_owned()), group),
            _ => (None, rest),
        };
        Self {
            name: name.to_owned(),
            version,
            group: Some(group.to_owned()),
        }
    }
}

/// Whether `text` is a Kubernetes API version: `v1`, `v1alpha2`, `v2beta1`.
fn is_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else {
        return false;
    };
    let major_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (major, level) = rest.split_at(major_end);
    let level_ok = level.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            level
                .strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    !major.is_empty() && level_ok
}

/// A [`WaitFor`] in the connection's namespace: `wait_for(&connection).target("job/migrate").await?…`.
pub fn wait_for(connection: &Connection) -> WaitFor {
    WaitFor::new(connection)
}

/// Waits for conditions on resources with no Gate object: the same spec, the same
/// rules, judged here on watches of the objects themselves.
pub struct WaitFor {
    connection: Connection,
    spec: GateSpec,
}

impl WaitFor {
    /// Nothing to wait for yet, in the connection's namespace.
    pub fn new(connection: &Connection) -> Self {
        Self {
            connection: connection.clone(),
            spec: GateSpec::default(),
        }
    }

    /// Adds a condition.
    pub fn condition(mut self, condition: GateCondition) -> Self {
        self.spec.conditions.push(condition);
        self
    }

    /// Adds a condition from a `--for` value (see [`condition_for`]).
    pub async fn target(self, text: &str) -> Result<Self> {
        let condition = condition_for(&self.connection, text).await?;
        Ok(self.condition(condition))
    }

    /// Adds a failure test: when it holds, the wait ends Failed at once.
    pub fn fail_when(mut self, condition: GateCondition) -> Self {
        self.spec.fail_when.push(condition);
        self
    }

    /// One condition met is enough (the default is all of them).
    pub fn any(mut self) -> Self {
        self.spec.match_ = GateMatch::Any;
        self
    }

    /// `n` conditions met are enough.
    pub fn min_met(mut self, n: i32) -> Self {
        self.spec.min_met = Some(n);
        self
    }

    /// The spec waited for.
    pub fn spec(&self) -> &GateSpec {
        &self.spec
    }

    /// Waits until the conditions open (Open), fail (Failed: a failure test held, a
    /// condition can no longer be met, or the spec is invalid) or `timeout` passes
    /// ([`Error::StillWaiting`]); `progress` sees each new status. Objects not created
    /// yet are waited for.
    pub async fn wait(
        self,
        timeout: Option<Duration>,
        mut progress: impl FnMut(&GateStatus),
    ) -> Result<GateStatus> {
        let started = Instant::now();
        let created_at = Timestamp::now();
        let namespace = self.connection.namespace.clone();
        let mut streams = Vec::new();
        for target in targets(&self.spec) {
            let resource = self.api_resource(target).await?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.connection.client.clone(), &namespace, &resource);
            let target = target.clone();
            let stream = follow(api, &target.name).map(move |item| (target.clone(), item));
            streams.push(stream.boxed());
        }
        let mut events = futures::stream::select_all(streams);
        let mut observed = Observations::new();
        let mut status: Option<GateStatus> = None;
        let deadline =
            timeout.map(|t| tokio::time::Instant::now() + t.saturating_sub(started.elapsed()));
        loop {
            let evaluation = evaluate(&GateInput {
                spec: &self.spec,
                generation: None,
                created_at,
                previous: status.as_ref(),
                observed: &observed,
                now: Timestamp::now(),
            });
            let wake = evaluation
                .requeue_after
                .map(|after| tokio::time::Instant::now() + after);
            if status.as_ref() != Some(&evaluation.status) {
                progress(&evaluation.status);
            }
            let phase = evaluation.status.phase;
            status = Some(evaluation.status);
            if phase != GatePhase::Waiting {
                return Ok(status.unwrap_or_default());
            }
            let never = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
            tokio::select! {
                event = events.next() => {
                    let Some((target, event)) = event else {
                        return Err(Error::Argument {
                            argument: "wait".to_owned(),
                            message: "the watches ended".to_owned(),
                        });
                    };
                    let seen = match event {
                        Ok(Some(object)) => {
                            Observed::Present(serde_json::to_value(&object).unwrap_or_default())
                        }
                        Ok(None) => Observed::Missing,
                        Err(refused) => {
                            return Err(Error::Argument {
                                argument: target.to_string(),
                                message: format!("watch refused: {refused}"),
                            });
                        }
                    };
                    observed.insert(target, seen);
                }
                () = tokio::time::sleep_until(wake.unwrap_or(never)) => {}
                () = tokio::time::sleep_until(deadline.unwrap_or(never)) => {
                    let last = status.unwrap_or_default();
                    return Err(Error::ConditionsNotMet {
                        what: targets(&self.spec).iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                        state: format!("{}: {}", last.phase, last.summary()),
                        waited: started.elapsed(),
                    });
                }
            }
        }
    }

    /// The resource a target's kind is served as (namespaced: objects are waited for
    /// in the connection's namespace).
    async fn api_resource(&self, target: &TargetRef) -> Result<ApiResource> {
        let gvk = GroupVersionKind::gvk(target.group(), target.version(), &target.kind);
        let refused = |message: String| Error::Argument {
            argument: target.to_string(),
            message,
        };
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.connection.client, &gvk)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code != 404 => {
                    refused(format!("discovery refused: {}", status.message))
                }
                kube::Error::Api(_) | kube::Error::Discovery(_) => refused(
                    KindUnusable::NotServed {
                        kind: target.kind.clone(),
                        api_version: target.api_version.clone(),
                    }
                    .to_string(),
                ),
                other => discovery_error(&self.connection, &target.to_string(), other),
            })?;
        if capabilities.scope == kube::discovery::Scope::Cluster {
            let plural = resource.plural;
            return Err(refused(KindUnusable::ClusterScoped { plural }.to_string()));
        }
        Ok(resource)
    }
}

/// A Gate's override (`None` hands it back to its conditions).
#[derive(serde::Serialize, Debug)]
struct Override<'a> {
    #[serde(rename = "override")]
    override_: Option<&'a GateOverride>,
}

#[cfg(test)]
mod tests {
    use super::{Override, QualifiedResource, is_version};

    #[test]
    fn the_override_patch_writes_a_field_of_the_gates_spec_and_none_removes_it() {
        crate::patches::tests::writes_fields_of::<konductor_api::gate::GateSpec>(Override {
            override_: None,
        });
        let body =
            serde_json::to_value(crate::patches::SpecPatch::new(Override { override_: None }))
                .unwrap();
        assert_eq!(body, serde_json::json!({"spec": {"override": null}}));
    }

    fn parsed(text: &str) -> (String, Option<String>, Option<String>) {
        let q = QualifiedResource::parse(text);
        (q.name, q.version, q.group)
    }

    #[test]
    fn a_resource_may_name_its_group_or_its_version_and_group() {
        let own = |s: &str| Some(s.to_owned());
        assert_eq!(parsed("Job"), ("job".into(), None, None));
        assert_eq!(parsed("jobs.batch"), ("jobs".into(), None, own("batch")));
        assert_eq!(
            parsed("jobs.v1.batch"),
            ("jobs".into(), own("v1"), own("batch"))
        );
        assert_eq!(
            parsed("databases.v2beta1.acme.example.com"),
            ("databases".into(), own("v2beta1"), own("acme.example.com"))
        );
        assert_eq!(
            parsed("databases.acme.example.com"),
            ("databases".into(), None, own("acme.example.com"))
        );
        // A group whose first label only looks like a version, with nothing after it.
        assert_eq!(parsed("things.v1"), ("things".into(), None, own("v1")));
    }

    #[test]
    fn versions_are_told_from_group_labels() {
        for version in ["v1", "v2", "v1alpha1", "v2beta3", "v10"] {
            assert!(is_version(version), "{version}");
        }
        for label in ["v", "valpha1", "v1alpha", "v1gamma1", "acme", "1", "vx1"] {
            assert!(!is_version(label), "{label}");
        }
    }
}
