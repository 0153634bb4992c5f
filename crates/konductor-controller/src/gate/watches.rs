//! The watches a Gate's conditions need: one per referenced kind and namespace (a Gate
//! names objects in its own namespace only), the kind found by discovery, started when
//! the first Gate there names the kind and stopped when the last Gate that named it no
//! longer needs it — never polling. Each watch fills a cache of the kind's objects in
//! that namespace (never the whole cluster's) and queues, on every change of an
//! object, the Gates that name it.
//!
//! The operator reads only the kinds it was told it may read ([`GateKinds`]: the
//! presets' kinds, more by configuration, never a wildcard): a Gate naming another
//! kind gets a condition message saying so, as it does for a kind not served or a
//! watch the API server refuses. Inside `konductor server` the controller may read
//! every kind the server serves ([`GateKinds::any`]): it is the server.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use konductor_api::gate::presets::PRESET_KINDS;
use konductor_api::gate::resume::RESUMABLE_KINDS;
use konductor_api::gate::rules::Observed;
use konductor_api::gate::target::KindUnusable;
use konductor_api::gate::{Gate, TargetRef};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::Scope;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};

use crate::metrics::Metrics;
use crate::queue::{Urgency, WorkQueue};

/// How long a kind that discovery did not find is remembered before asking again (a
/// CRD applied meanwhile is found then).
pub const REDISCOVER_AFTER: Duration = Duration::from_secs(5);

/// The kinds the controller may read for Gates, and those it may resume, as
/// `resource.group` (`jobs.batch`; `configmaps` for the core group): on a cluster, the
/// presets' kinds and those the operator is given (its ClusterRole grants exactly
/// those); in `konductor server`, every kind the server serves. Resumed: Jobs, JobSets
/// and Argo Workflows, and those the operator is given (it reads them too).
#[derive(Clone, Debug)]
pub struct GateKinds {
    /// `None`: any kind.
    allowed: Option<BTreeSet<String>>,
    /// The kinds whose `spec.suspend` a Gate may set to `false`.
    resumable: BTreeSet<String>,
}

impl Default for GateKinds {
    /// The presets' kinds (Jobs, Deployments and Konductor's own) read, and
    /// [`RESUMABLE_KINDS`] resumed.
    fn default() -> Self {
        Self {
            allowed: Some(
                PRESET_KINDS
                    .iter()
                    .map(|k| qualified(k.resource, k.group))
                    .collect(),
            ),
            resumable: RESUMABLE_KINDS
                .iter()
                .map(|(group, resource)| qualified(resource, group))
                .collect(),
        }
    }
}

/// `resource.group`, or `resource` for the core group.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl GateKinds {
    /// Every kind the API server serves read, and the default kinds resumed plus
    /// `resume`: for the controller inside `konductor server`, which may read all of
    /// it.
    pub fn any(resume: &[String]) -> Result<Self, String> {
        Ok(Self {
            allowed: None,
            ..Self::with(&[], resume)?
        })
    }

    /// The presets' kinds and `read` read, the default kinds and `resume` resumed
    /// (each `resource.group`, or `resource` for the core group); the error names a
    /// malformed entry.
    pub fn with(read: &[String], resume: &[String]) -> Result<Self, String> {
        let mut kinds = Self::default();
        for entry in read {
            kinds
                .allowed
                .get_or_insert_default()
                .insert(parse_gate_kind(entry)?);
        }
        for entry in resume {
            kinds.resumable.insert(parse_gate_kind(entry)?);
        }
        Ok(kinds)
    }

    /// Whether objects of `resource` in `group` may be read (a kind that may be
    /// resumed may be read).
    pub fn allows(&self, resource: &str, group: &str) -> bool {
        let name = qualified(resource, group);
        self.resumable.contains(&name)
            || self
                .allowed
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&name))
    }

    /// Whether objects of `resource` in `group` may be resumed.
    pub fn resumes(&self, resource: &str, group: &str) -> bool {
        self.resumable.contains(&qualified(resource, group))
    }

    /// The kinds resumed, for messages.
    fn resumable_list(&self) -> String {
        self.resumable
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `--gate-kinds` entry: `resource.group`, or `resource` for the core group, in
/// lower case, never a wildcard; the error says what is wrong with it.
pub fn parse_gate_kind(entry: &str) -> Result<String, String> {
    let valid = !entry.is_empty()
        && entry
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if valid {
        Ok(entry.to_owned())
    } else {
        Err(format!(
            "{entry:?} is not resource.group (like databases.acme.example.com, or configmaps)"
        ))
    }
}

/// A kind as a Gate names it: (apiVersion, kind).
type KindKey = (String, String);

/// What one watch follows: a kind in a namespace.
type WatchKey = (KindKey, String);

/// An object a Gate names: its kind and namespace, and its name.
type ObjectKey = (WatchKey, String);

fn object_key(namespace: &str, target: &TargetRef) -> ObjectKey {
    (
        (
            (target.api_version.clone(), target.kind.clone()),
            namespace.to_owned(),
        ),
        target.name.clone(),
    )
}

/// One running watch of a kind in a namespace.
struct KindWatch {
    /// Counts the running watches (down again when this one stops).
    running: prometheus_client::metrics::gauge::Gauge,
    cache: Store<DynamicObject>,
    /// Whether the first list is in the cache.
    ready: Arc<AtomicBool>,
    /// The watch's last error, cleared when it lists again.
    failing: Arc<Mutex<Option<String>>>,
    task: tokio::task::AbortHandle,
}

impl Drop for KindWatch {
    fn drop(&mut self) {
        self.task.abort();
        self.running.dec();
    }
}

/// What discovery said of a kind.
enum Discovered {
    Found(ApiResource),
    /// Served, but not something a Gate can name (a cluster-scoped kind).
    Unusable(String),
    NotFound {
        why: String,
        at: tokio::time::Instant,
    },
}

/// Which Gates name which objects, and the watches that serve them.
#[derive(Default)]
struct State {
    /// The Gates naming each object, by name, by kind and namespace: a kind and
    /// namespace with none is not watched.
    interest: HashMap<WatchKey, HashMap<String, HashSet<ObjectRef<Gate>>>>,
    /// What each Gate names (to forget it).
    named_by: HashMap<ObjectRef<Gate>, Vec<ObjectKey>>,
    /// The running watches, by kind and namespace.
    watches: HashMap<WatchKey, KindWatch>,
    /// Discovery's answers, by kind.
    discovered: HashMap<KindKey, Discovered>,
}

impl State {
    /// The Gates naming objects of `watched` (a kind in a namespace).
    fn gates_of(&self, watched: &WatchKey) -> Vec<ObjectRef<Gate>> {
        self.interest
            .get(watched)
            .into_iter()
            .flat_map(HashMap::values)
            .flatten()
            .cloned()
            .collect()
    }

    /// The Gates naming the object `name` of `watched` (a kind in a namespace).
    fn gates_naming(&self, watched: &WatchKey, name: &str) -> Vec<ObjectRef<Gate>> {
        self.interest
            .get(watched)
            .and_then(|objects| objects.get(name))
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Forgets what `gate` names, stopping each watch no Gate needs any more. O(what
    /// the Gate names).
    fn unname(&mut self, gate: &ObjectRef<Gate>) {
        if let Some(keys) = self.named_by.remove(gate) {
            self.drop_interest(gate, keys);
        }
    }

    /// Takes `gate` off the Gates naming `keys`, stopping each watch (a kind in a
    /// namespace) no Gate needs any more.
    fn drop_interest(&mut self, gate: &ObjectRef<Gate>, keys: Vec<ObjectKey>) {
        for (watched, object) in keys {
            let Some(objects) = self.interest.get_mut(&watched) else {
                continue;
            };
            if let Some(gates) = objects.get_mut(&object) {
                gates.remove(gate);
                if gates.is_empty() {
                    objects.remove(&object);
                }
            }
            if objects.is_empty() {
                self.interest.remove(&watched);
                if self.watches.remove(&watched).is_some() {
                    let ((api_version, kind), namespace) = &watched;
                    tracing::info!(%api_version, %kind, %namespace, "no waiting Gate names this kind here any more; watch stopped");
                }
            }
        }
    }
}

/// The watches of the kinds Gates name. Cheap to share (`Arc`).
pub struct Watches {
    client: Client,
    metrics: Arc<Metrics>,
    kinds: GateKinds,
    queue: Arc<WorkQueue<ObjectRef<Gate>>>,
    state: Arc<Mutex<State>>,
}

impl Watches {
    /// No watches yet; each change queues its Gates on `queue`; `metrics` counts the
    /// watches running.
    pub fn new(
        client: Client,
        kinds: GateKinds,
        queue: Arc<WorkQueue<ObjectRef<Gate>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            metrics,
            kinds,
            queue,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `gate` names exactly `targets` (in its namespace), stopping the
    /// watches nobody needs any more ([`Watches::observe`] starts those needed).
    pub fn name(&self, gate: &ObjectRef<Gate>, namespace: &str, targets: &[&TargetRef]) {
        let keys: Vec<ObjectKey> = targets.iter().map(|t| object_key(namespace, t)).collect();
        let mut state = self.lock();
        if state.named_by.get(gate) == Some(&keys) {
            return;
        }
        // Interest in the new objects first, so a kind named before and after keeps
        // its watch.
        for (watched, object) in &keys {
            state
                .interest
                .entry(watched.clone())
                .or_default()
                .entry(object.clone())
                .or_default()
                .insert(gate.clone());
        }
        let before = state
            .named_by
            .insert(gate.clone(), keys.clone())
            .unwrap_or_default();
        let dropped = before.into_iter().filter(|k| !keys.contains(k)).collect();
        state.drop_interest(gate, dropped);
    }

    /// Forgets what `gate` names (it is gone, or finished), stopping unused watches.
    pub fn forget(&self, gate: &ObjectRef<Gate>) {
        self.lock().unname(gate);
    }

    /// What is known of `target` in `namespace` now; starts the watch of its kind
    /// there if none runs. Asks discovery (once per kind) what the kind is.
    pub async fn observe(&self, namespace: &str, target: &TargetRef) -> Observed {
        let kind: KindKey = (target.api_version.clone(), target.kind.clone());
        let resource = match self.resource(&kind).await {
            Ok(resource) => resource,
            Err(why) => return Observed::Unreadable(why),
        };
        if !self.kinds.allows(&resource.plural, &resource.group) {
            let name = qualified(&resource.plural, &resource.group);
            return Observed::Unreadable(format!(
                "the operator may not read {name}: name it in konductor operator's --gate-kinds and grant read access to it in the operator's ClusterRole"
            ));
        }
        let watched: WatchKey = (kind, namespace.to_owned());
        let mut state = self.lock();
        let watch = state
            .watches
            .entry(watched.clone())
            .or_insert_with(|| self.start(watched, resource.clone()));
        if !watch.ready.load(Ordering::Acquire) {
            let failing = watch
                .failing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            return match failing {
                Some(why) => {
                    Observed::Unreadable(format!("cannot watch {}: {why}", resource.plural))
                }
                None => Observed::Unknown,
            };
        }
        let key = ObjectRef::new_with(&target.name, resource).within(namespace);
        match watch.cache.get(&key) {
            Some(object) => Observed::Present(serde_json::to_value(&*object).unwrap_or_default()),
            None => Observed::Missing,
        }
    }

    /// The API of `target`'s kind in `namespace` (for resuming it), from discovery.
    pub async fn api(
        &self,
        namespace: &str,
        target: &TargetRef,
    ) -> Result<Api<DynamicObject>, String> {
        let kind: KindKey = (target.api_version.clone(), target.kind.clone());
        let resource = self.resource(&kind).await?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource,
        ))
    }

    /// Why `target` may not be resumed — a kind discovery found, but not one this
    /// controller resumes — or `None` (a kind it resumes, or one not found yet: a CRD
    /// may be applied later, and the target's observation says so meanwhile).
    pub async fn refusal(&self, target: &TargetRef) -> Option<String> {
        let kind: KindKey = (target.api_version.clone(), target.kind.clone());
        let resource = self.resource(&kind).await.ok()?;
        if self.kinds.resumes(&resource.plural, &resource.group) {
            return None;
        }
        Some(format!(
            "{} is not a kind this controller resumes ({}): not resumed; name it in the operator's --resume-kinds (and let its ClusterRole patch it) if its spec.suspend means \"create nothing yet\"",
            qualified(&resource.plural, &resource.group),
            self.kinds.resumable_list()
        ))
    }

    /// Whether discovery found no kind of `target`'s (not served yet: a CRD not applied).
    pub fn not_served(&self, target: &TargetRef) -> bool {
        let kind = (target.api_version.clone(), target.kind.clone());
        matches!(
            self.lock().discovered.get(&kind),
            Some(Discovered::NotFound { .. })
        )
    }

    /// The kind's resource, from discovery (remembered; a kind not found is asked for
    /// again after [`REDISCOVER_AFTER`]).
    async fn resource(&self, kind: &KindKey) -> Result<ApiResource, String> {
        match self.lock().discovered.get(kind) {
            Some(Discovered::Found(resource)) => return Ok(resource.clone()),
            Some(Discovered::Unusable(why)) => return Err(why.clone()),
            Some(Discovered::NotFound { why, at }) if at.elapsed() < REDISCOVER_AFTER => {
                return Err(why.clone());
            }
            _ => {}
        }
        let (group, version) = match kind.0.rsplit_once('/') {
            Some((group, version)) => (group, version),
            None => ("", kind.0.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &kind.1);
        let answer = kube::discovery::pinned_kind(&self.client, &gvk).await;
        let mut state = self.lock();
        match answer {
            Ok((resource, capabilities)) if capabilities.scope == Scope::Cluster => {
                let plural = resource.plural;
                let why = KindUnusable::ClusterScoped { plural }.to_string();
                state
                    .discovered
                    .insert(kind.clone(), Discovered::Unusable(why.clone()));
                Err(why)
            }
            Ok((resource, _)) => {
                state
                    .discovered
                    .insert(kind.clone(), Discovered::Found(resource.clone()));
                Ok(resource)
            }
            Err(error) => {
                let not_served = KindUnusable::NotServed {
                    kind: kind.1.clone(),
                    api_version: kind.0.clone(),
                };
                let why = match &error {
                    kube::Error::Api(status) if status.code == 404 => not_served.to_string(),
                    kube::Error::Discovery(_) => not_served.to_string(),
                    _ => format!(
                        "cannot ask discovery for kind {} in {}: {}",
                        kind.1,
                        kind.0,
                        crate::Error::Kube(error)
                    ),
                };
                state.discovered.insert(
                    kind.clone(),
                    Discovered::NotFound {
                        why: why.clone(),
                        at: tokio::time::Instant::now(),
                    },
                );
                Err(why)
            }
        }
    }

    /// Starts the watch of `watched` (a kind in a namespace): each object's change
    /// queues the Gates naming it; the first list queues every Gate naming the kind there.
    fn start(&self, watched: WatchKey, resource: ApiResource) -> KindWatch {
        let ((api_version, kind), namespace) = &watched;
        tracing::info!(%api_version, %kind, %namespace, "a Gate names this kind here; watching it");
        let writer = Writer::new(resource.clone());
        let cache = writer.as_reader();
        let ready = Arc::new(AtomicBool::new(false));
        let failing = Arc::new(Mutex::new(None));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let state = Arc::downgrade(&self.state);
        let queue = self.queue.clone();
        let (task_ready, task_failing) = (ready.clone(), failing.clone());
        let task = tokio::spawn(async move {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .for_each(|event| {
                    let Some(state) = state.upgrade() else {
                        return futures::future::ready(());
                    };
                    let state = state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let route = |object: &DynamicObject| {
                        let name = object.metadata.name.as_deref().unwrap_or_default();
                        for gate in state.gates_naming(&watched, name) {
                            queue.add_with(gate, Urgency::Urgent);
                        }
                    };
                    match event {
                        Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                            route(&object);
                        }
                        Ok(watcher::Event::InitDone) => {
                            *task_failing
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                            task_ready.store(true, Ordering::Release);
                            for gate in state.gates_of(&watched) {
                                queue.add_with(gate, Urgency::Urgent);
                            }
                        }
                        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                        Err(error) => {
                            tracing::warn!(%error, kind = %watched.0.1, namespace = %watched.1, "watching a kind Gates name");
                            let said = Some(crate::describe_watch(&error));
                            let mut failing = task_failing
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            // Each retry of a refused watch fails the same way: the
                            // Gates are told once, not on every retry.
                            let news = *failing != said;
                            *failing = said;
                            drop(failing);
                            if news && !task_ready.load(Ordering::Acquire) {
                                for gate in state.gates_of(&watched) {
                                    queue.add_with(gate, Urgency::Normal);
                                }
                            }
                        }
                    }
                    futures::future::ready(())
                })
                .await;
        });
        let running = self.metrics.gate_watches.clone();
        running.inc();
        KindWatch {
            running,
            cache,
            ready,
            failing,
            task: task.abort_handle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> TargetRef {
        TargetRef {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: name.into(),
        }
    }

    fn watches() -> Watches {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        Watches::new(client, GateKinds::default(), Arc::default(), Arc::default())
    }

    #[tokio::test]
    async fn a_kind_is_watched_in_a_namespace_while_some_gate_there_names_one_of_its_objects() {
        let watches = watches();
        let (g1, g2, g3) = (
            ObjectRef::<Gate>::new("g1").within("ns"),
            ObjectRef::<Gate>::new("g2").within("ns"),
            ObjectRef::<Gate>::new("g3").within("other"),
        );
        let kind: KindKey = ("batch/v1".into(), "Job".into());
        let (here, there): (WatchKey, WatchKey) =
            ((kind.clone(), "ns".into()), (kind, "other".into()));
        watches.name(&g1, "ns", &[&job("a")]);
        watches.name(&g2, "ns", &[&job("a"), &job("b")]);
        watches.name(&g3, "other", &[&job("a")]);
        let naming_a = |w: &Watches, at: &WatchKey| w.lock().gates_naming(at, "a");
        assert_eq!(naming_a(&watches, &here).len(), 2);
        assert_eq!(naming_a(&watches, &there), vec![g3.clone()]);
        // g1 now names b instead of a: the kind stays named throughout.
        watches.name(&g1, "ns", &[&job("b")]);
        assert_eq!(naming_a(&watches, &here), vec![g2.clone()]);
        assert_eq!(watches.lock().gates_of(&here).len(), 3);
        watches.forget(&g2);
        assert!(naming_a(&watches, &here).is_empty());
        assert_eq!(watches.lock().gates_of(&here), vec![g1.clone()]);
        watches.forget(&g1);
        assert!(!watches.lock().interest.contains_key(&here));
        assert_eq!(watches.lock().gates_of(&there), vec![g3.clone()]);
        watches.forget(&g3);
        assert!(watches.lock().interest.is_empty());
        assert!(watches.lock().named_by.is_empty());
    }

    #[test]
    fn the_readable_kinds_are_the_presets_and_those_given_never_a_wildcard() {
        let kinds = GateKinds::with(
            &["databases.acme.example.com".into(), "configmaps".into()],
            &[],
        )
        .unwrap();
        assert!(kinds.allows("jobs", "batch"));
        assert!(kinds.allows("deployments", "apps"));
        assert!(kinds.allows("barriers", "konductor.io"));
        assert!(kinds.allows("databases", "acme.example.com"));
        assert!(kinds.allows("configmaps", ""));
        assert!(!kinds.allows("secrets", ""));
        assert!(!GateKinds::default().allows("databases", "acme.example.com"));
        for bad in ["*", "jobs*", "Jobs.batch", ""] {
            let error = GateKinds::with(&[bad.to_owned()], &[]).unwrap_err();
            assert!(error.contains("is not resource.group"), "{bad}: {error}");
            let error = GateKinds::with(&[], &[bad.to_owned()]).unwrap_err();
            assert!(error.contains("is not resource.group"), "{bad}: {error}");
        }
    }

    #[test]
    fn inside_the_server_every_served_kind_may_be_read() {
        let any = GateKinds::any(&[]).unwrap();
        assert!(any.allows("configmaps", ""));
        assert!(any.allows("databases", "acme.example.com"));
        assert!(!any.resumes("cronjobs", "batch"), "reading is not resuming");
    }

    #[test]
    fn jobs_jobsets_and_workflows_are_resumed_and_more_only_when_given() {
        let kinds = GateKinds::default();
        for (resource, group) in [
            ("jobs", "batch"),
            ("jobsets", "jobset.x-k8s.io"),
            ("workflows", "argoproj.io"),
        ] {
            assert!(kinds.resumes(resource, group), "{resource}");
            assert!(kinds.allows(resource, group), "what is resumed is read");
        }
        assert!(!kinds.resumes("cronjobs", "batch"));
        assert!(!kinds.resumes("deployments", "apps"));
        let more = GateKinds::with(&[], &["pipelines.ci.example.com".into()]).unwrap();
        assert!(more.resumes("pipelines", "ci.example.com"));
        assert!(more.allows("pipelines", "ci.example.com"));
    }
}
