//! What the page draws for each object — its **panel** — computed from the object's
//! typed spec and status (and, for the lock family and WaitGroups, from their claims:
//! Permits and members). Pure: no I/O, so every panel is unit-tested.
//!
//! Panels are bounded whatever the object's size — at most [`QUEUE_SHOWN`] waiters,
//! [`CELLS_SHOWN`] member cells, [`LIST_SHOWN`] arrivals — with the totals beside them,
//! so the page never draws more rows than a person can read.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use konductor_api::gate::Gate;
use konductor_api::locks::{Grant, LockKind, Permit, PermitMode, PermitPhase};
use konductor_api::once::Once;
use konductor_api::ratelimit::RateLimit;
use konductor_api::waitgroup::{WaitGroup, WaitGroupMember};
use konductor_api::{Barrier, Outcome};
use kube::ResourceExt;
use kube::core::DynamicObject;
use serde::Serialize;

/// How many waiters of a queue a panel lists (the rest are counted).
pub const QUEUE_SHOWN: usize = 10;
/// How many members of a WaitGroup its grid draws (the rest are counted by state).
pub const CELLS_SHOWN: usize = 300;
/// How many entries of any other list (arrivals, failures, history) a panel shows.
pub const LIST_SHOWN: usize = 20;

/// One object as the page draws it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Panel {
    /// `Kind/namespace/name`: the panel's identity on the page.
    pub key: String,
    /// The object's kind (`Barrier`, `Mutex`…).
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its phase as its status says it (`Pending` before the controller wrote one).
    pub phase: String,
    /// Whether something still waits on it (drawn first).
    pub active: bool,
    /// Since when the longest wait in it has lasted, if anything waits: for "what is
    /// waiting longest".
    pub waiting_since: Option<String>,
    /// One line saying where it stands ("2 of 3 arrived", "3 of 8 in use, 4 waiting").
    pub summary: String,
    /// The kubectl command that shows it.
    pub kubectl: String,
    /// The koncli command that shows it.
    pub koncli: String,
    /// What its kind draws.
    pub view: View,
}

/// What each kind draws.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum View {
    /// A Barrier: a bar of arrivals.
    #[serde(rename_all = "camelCase")]
    Barrier {
        /// `spec.expected`.
        expected: i32,
        /// The number of arrivals that opens it.
        quorum: i32,
        /// Arrived so far.
        arrived: i32,
        /// Reported failed.
        failed: i32,
        /// Who arrived (the first [`LIST_SHOWN`]).
        arrivals: Vec<String>,
        /// Who failed, with why.
        failures: Vec<Failure>,
        /// When it times out.
        deadline: Option<String>,
        /// When it opened.
        opened_at: Option<String>,
    },
    /// A Semaphore, Mutex, RWMutex or RateLimit: holders and the queue.
    #[serde(rename_all = "camelCase")]
    Lock {
        /// How many may hold it at once.
        capacity: i64,
        /// Holders and queue.
        claims: Claims,
        /// A RateLimit's window.
        rate: Option<Rate>,
    },
    /// A Once: the current key and its executor, the history.
    #[serde(rename_all = "camelCase")]
    Once {
        /// The key being (or last) run.
        key: String,
        /// Who runs it.
        executor: Option<String>,
        /// Attempts at the current key.
        attempts: i32,
        /// When the current attempt started.
        started_at: Option<String>,
        /// When the key completed.
        completed_at: Option<String>,
        /// The last attempts, newest first.
        history: Vec<OnceAttempt>,
        /// Keys completed, newest first.
        completed_keys: Vec<CompletedKey>,
        /// The executor's claim and the replicas waiting to take over.
        claims: Claims,
    },
    /// A WaitGroup: a grid of members.
    #[serde(rename_all = "camelCase")]
    WaitGroup {
        /// `spec.expected`, if set.
        expected: Option<i32>,
        /// Whether no more members may be added.
        sealed: bool,
        /// Members added, done, failed, still pending (the status's counters).
        added: i32,
        /// Done.
        done: i32,
        /// Failed.
        failed: i32,
        /// Not finished.
        counter: i32,
        /// Members by state: pending, running, done, failed.
        by_state: BTreeMap<&'static str, usize>,
        /// The grid: failed first, then running, pending, done; at most [`CELLS_SHOWN`].
        cells: Vec<MemberCell>,
        /// When it times out.
        deadline: Option<String>,
    },
    /// A Gate: its conditions and what it resumes.
    #[serde(rename_all = "camelCase")]
    Gate {
        /// `all` or `any` (or `N of M`).
        rule: String,
        /// Conditions met.
        met: i32,
        /// Conditions needed.
        required: i32,
        /// Each condition: met, since, why.
        conditions: Vec<GateCondition>,
        /// What it resumes when it opens.
        resume: Vec<ResumeTarget>,
        /// When it times out.
        deadline: Option<String>,
        /// When it opened.
        opened_at: Option<String>,
    },
}

/// A holder that reported failure.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Failure {
    /// Who failed.
    pub holder: String,
    /// Why, as reported.
    pub message: Option<String>,
}

/// Who holds a lock and who waits for it.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// Every grant in force, in token order.
    pub holders: Vec<Holder>,
    /// The first [`QUEUE_SHOWN`] waiters, in the order they will be granted.
    pub queue: Vec<Waiter>,
    /// How many wait in all.
    pub queue_length: usize,
    /// The last fencing token issued.
    pub fencing_token: i64,
}

/// One grant.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// Its holder.
    pub holder: String,
    /// Its fencing token.
    pub token: i64,
    /// `read` for an RWMutex's shared holder.
    pub mode: &'static str,
    /// Since when it holds.
    pub since: String,
    /// When it expires unless renewed.
    pub expires_at: Option<String>,
}

/// One waiting claim.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Waiter {
    /// Its holder.
    pub holder: String,
    /// Its priority (higher first).
    pub priority: i32,
    /// `read` or `write` for an RWMutex, else empty.
    pub mode: &'static str,
    /// Since when it waits (its Permit's creation).
    pub since: String,
}

/// A RateLimit's window.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Grants allowed per window.
    pub limit: i32,
    /// The window (`1m`).
    pub window: String,
    /// Grants in the current window.
    pub used: i32,
    /// When the next slot frees, if the window is full.
    pub next_slot_at: Option<String>,
}

/// One attempt of a Once.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OnceAttempt {
    /// The key it ran.
    pub key: String,
    /// Who ran it.
    pub holder: String,
    /// Its fencing token.
    pub token: i64,
    /// Succeeded, Failed, Lost or Interrupted.
    pub outcome: String,
    /// When it ended.
    pub finished_at: String,
    /// What it reported.
    pub message: Option<String>,
}

/// A key a Once completed.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompletedKey {
    /// The key.
    pub key: String,
    /// Succeeded or Failed (for good).
    pub phase: String,
    /// When.
    pub completed_at: String,
}

/// One member in a WaitGroup's grid.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MemberCell {
    /// Its ID.
    pub name: String,
    /// `pending`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    pub message: Option<String>,
}

/// One condition of a Gate.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateCondition {
    /// The object, as kubectl names it (`job/migrate`).
    pub target: String,
    /// The test, in words.
    pub test: String,
    /// Whether it is met.
    pub met: bool,
    /// Whether it can no longer be met.
    pub failed: bool,
    /// Since when it has held.
    pub since: Option<String>,
    /// Why it is (not) met.
    pub message: String,
}

/// One object a Gate resumes.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResumeTarget {
    /// The object, as kubectl names it (`job/b`).
    pub target: String,
    /// Waiting, Resumed, Refused or RanUnordered.
    pub state: String,
    /// When it was resumed.
    pub resumed_at: Option<String>,
    /// Why not.
    pub message: Option<String>,
}

/// A claim on a lock-family object, as its panel needs it: what is kept of a Permit.
#[derive(Clone, Debug, PartialEq)]
pub struct PermitClaim {
    /// Its holder.
    pub holder: String,
    /// Its priority.
    pub priority: i32,
    /// Shared (a read lock) or exclusive.
    pub mode: PermitMode,
    /// Its creation time: since when it waits.
    pub since: String,
    /// Pending, Granted or Expired.
    pub phase: PermitPhase,
    /// Its place in the queue, as the controller wrote it.
    pub position: Option<i32>,
}

/// A member of a WaitGroup, as its grid needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberClaim {
    /// Its ID.
    pub name: String,
    /// `pending`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    pub message: Option<String>,
}

/// A claim kept for its subject's panel.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// A Permit.
    Permit(PermitClaim),
    /// A WaitGroup member.
    Member(MemberClaim),
}

/// Where a claim sits among its subject's: pending Permits first, in the order they
/// will be granted; members failed first, then running, pending, done, by name. Claims
/// kept in this order make each panel one pass (its sort finds them sorted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimOrder(u8, i32, i32, String, String);

impl ClaimOrder {
    /// The place of `claim`, whose own key is `own` (the last tie-breaker).
    pub fn of(claim: &Claim, own: &str) -> Self {
        match claim {
            Claim::Permit(p) => ClaimOrder(
                u8::from(p.phase != PermitPhase::Pending),
                p.position.unwrap_or(i32::MAX),
                -p.priority,
                p.since.clone(),
                own.to_owned(),
            ),
            Claim::Member(m) => {
                ClaimOrder(state_rank(m.state), 0, 0, m.name.clone(), own.to_owned())
            }
        }
    }
}

/// The subject a claim counts for (`Kind/namespace/name`) and what is kept of it;
/// `None` for an object that is no claim the page draws.
pub fn claim_of(kind: &str, object: &DynamicObject) -> Option<(String, Claim)> {
    let namespace = object.namespace().unwrap_or_default();
    let since = object
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    match kind {
        "Permit" => {
            let permit: Permit = object.clone().try_parse().ok()?;
            let status = permit.status.unwrap_or_default();
            let lock = permit.spec.lock_ref;
            let kind = lock_kind_name(lock.kind)?;
            Some((
                key(kind, &namespace, &lock.name),
                Claim::Permit(PermitClaim {
                    holder: permit.spec.holder,
                    priority: permit.spec.priority,
                    mode: permit.spec.mode,
                    since,
                    phase: status.phase,
                    position: status.position,
                }),
            ))
        }
        "WaitGroupMember" => {
            let member: WaitGroupMember = object.clone().try_parse().ok()?;
            let expired = member.expired_now();
            let spec = member.spec;
            let (state, message) = match (&spec.outcome, expired) {
                (Some(outcome), _) if outcome.result == Outcome::Succeeded => ("done", None),
                (Some(outcome), _) => ("failed", outcome.message.clone()),
                (None, true) => ("failed", Some("expired: not renewed".to_owned())),
                (None, false) if spec.holder.is_some() => ("running", None),
                (None, false) => ("pending", None),
            };
            Some((
                key("WaitGroup", &namespace, &spec.wait_group),
                Claim::Member(MemberClaim {
                    name: spec.member,
                    state,
                    message,
                }),
            ))
        }
        _ => None,
    }
}

/// The kind a Permit's `lockRef.kind` names, as the page's keys spell it.
fn lock_kind_name(kind: LockKind) -> Option<&'static str> {
    Some(match kind {
        LockKind::Semaphore => "Semaphore",
        LockKind::Mutex => "Mutex",
        LockKind::RWMutex => "RWMutex",
        LockKind::Once => "Once",
        LockKind::RateLimit => "RateLimit",
        LockKind::Unknown => return None,
    })
}

/// A panel's key: `Kind/namespace/name`.
pub fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The panel of `object`, a `kind` subject, with the claims that count for it; `None`
/// if the object does not parse as its kind.
pub fn panel<'a>(
    kind: &'static str,
    object: &DynamicObject,
    claims: impl Iterator<Item = &'a Claim>,
) -> Option<Panel> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let created = object
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    let word = kind.to_lowercase();
    let mut panel = Panel {
        key: key(kind, &namespace, &name),
        kind,
        kubectl: format!("kubectl get {word} {name} -n {namespace} -o yaml"),
        koncli: format!("koncli {word} status {name} -n {namespace}"),
        namespace,
        name,
        phase: String::new(),
        active: false,
        waiting_since: None,
        summary: String::new(),
        view: View::Lock {
            capacity: 0,
            claims: Claims::default(),
            rate: None,
        },
    };
    match kind {
        "Barrier" => barrier(&mut panel, object.clone().try_parse().ok()?, created),
        "Semaphore" | "Mutex" | "RWMutex" | "RateLimit" => lock(&mut panel, object, claims)?,
        "Once" => once(&mut panel, object.clone().try_parse().ok()?, claims),
        "WaitGroup" => waitgroup(
            &mut panel,
            object.clone().try_parse().ok()?,
            claims,
            created,
        ),
        "Gate" => gate(&mut panel, object.clone().try_parse().ok()?, created),
        _ => return None,
    }
    Some(panel)
}

impl Panel {
    /// Sets the phase; a panel in a `waiting_phase` is active, and has waited since
    /// the object's creation.
    fn set_phase(&mut self, phase: String, waiting_phase: &str, created: Option<String>) {
        self.active = phase == waiting_phase;
        self.waiting_since = created.filter(|_| self.active);
        self.phase = phase;
    }
}

fn time(t: &MicroTime) -> String {
    t.0.to_string()
}

fn phase_word(phase: impl std::fmt::Debug) -> String {
    format!("{phase:?}")
}

fn barrier(panel: &mut Panel, barrier: Barrier, created: Option<String>) {
    let status = barrier.status.unwrap_or_default();
    let quorum = barrier.spec.quorum.unwrap_or(barrier.spec.expected);
    panel.set_phase(phase_word(status.phase), "Waiting", created);
    panel.summary = format!(
        "{} of {} arrived{}{}",
        status.arrived,
        barrier.spec.expected,
        if quorum != barrier.spec.expected {
            format!(", quorum {quorum}")
        } else {
            String::new()
        },
        if status.failed > 0 {
            format!(", {} failed", status.failed)
        } else {
            String::new()
        }
    );
    panel.view = View::Barrier {
        expected: barrier.spec.expected,
        quorum,
        arrived: status.arrived,
        failed: status.failed,
        arrivals: status.arrivals.into_iter().take(LIST_SHOWN).collect(),
        failures: status
            .failures
            .into_iter()
            .take(LIST_SHOWN)
            .map(|f| Failure {
                holder: f.holder,
                message: f.message,
            })
            .collect(),
        deadline: status.lifecycle.deadline.as_ref().map(time),
        opened_at: status.opened_at.as_ref().map(time),
    };
}

/// Holders from the lock's grants (what the controller decided), the queue from the
/// Permits still pending, in the order they will be granted.
fn claims_of<'a>(
    grants: Option<Vec<Grant>>,
    fencing_token: i64,
    claims: impl Iterator<Item = &'a Claim>,
    read_write: bool,
) -> Claims {
    let holders = grants
        .unwrap_or_default()
        .into_iter()
        .map(|g| Holder {
            holder: g.holder,
            token: g.token,
            mode: if g.mode == PermitMode::Shared {
                "read"
            } else if read_write {
                "write"
            } else {
                ""
            },
            since: time(&g.granted_at),
            expires_at: g.expires_at.as_ref().map(time),
        })
        .collect();
    let mut waiting: Vec<&PermitClaim> = claims
        .filter_map(|c| match c {
            Claim::Permit(p) if p.phase == PermitPhase::Pending => Some(p),
            _ => None,
        })
        .collect();
    waiting.sort_by(|a, b| {
        (a.position.unwrap_or(i32::MAX), -a.priority, &a.since).cmp(&(
            b.position.unwrap_or(i32::MAX),
            -b.priority,
            &b.since,
        ))
    });
    Claims {
        holders,
        queue_length: waiting.len(),
        queue: waiting
            .into_iter()
            .take(QUEUE_SHOWN)
            .map(|p| Waiter {
                holder: p.holder.clone(),
                priority: p.priority,
                mode: match (read_write, p.mode) {
                    (true, PermitMode::Shared) => "read",
                    (true, _) => "write",
                    _ => "",
                },
                since: p.since.clone(),
            })
            .collect(),
        fencing_token,
    }
}

/// The oldest wait of a queue (its creation times are RFC 3339 strings, which sort as
/// times do).
fn oldest(claims: &Claims, all: &[&Claim]) -> Option<String> {
    if claims.queue_length == 0 {
        return None;
    }
    all.iter()
        .filter_map(|c| match c {
            Claim::Permit(p) if p.phase == PermitPhase::Pending => Some(p.since.clone()),
            _ => None,
        })
        .min()
}

fn lock<'a>(
    panel: &mut Panel,
    object: &DynamicObject,
    claims: impl Iterator<Item = &'a Claim>,
) -> Option<()> {
    use konductor_api::locks::status::LockStatus;
    let all: Vec<&Claim> = claims.collect();
    let (capacity, rate, status) = match panel.kind {
        "RateLimit" => {
            let limit: RateLimit = object.clone().try_parse().ok()?;
            let status = limit.status.unwrap_or_default();
            let rate = Rate {
                limit: limit.spec.limit,
                window: limit.spec.window.clone(),
                used: status.used,
                next_slot_at: status.next_slot_at.as_ref().map(time),
            };
            let capacity = limit
                .spec
                .max_concurrent
                .map_or(i64::from(limit.spec.limit), i64::from);
            let phase = phase_word(status.phase);
            (capacity, Some(rate), (phase, status.claims))
        }
        _ => {
            let kind = match panel.kind {
                "Semaphore" => LockKind::Semaphore,
                "RWMutex" => LockKind::RWMutex,
                _ => LockKind::Mutex,
            };
            let capacity = konductor_api::locks::CommonLockSpec::of(object)
                .map(|s| s.capacity())
                .unwrap_or(1);
            let status = LockStatus::of(kind, object).unwrap_or_else(|| LockStatus::empty(kind));
            let phase = match &status {
                LockStatus::Semaphore(s) => phase_word(s.phase),
                LockStatus::Mutex(s) => phase_word(s.phase),
                LockStatus::RWMutex(s) => phase_word(s.phase),
                LockStatus::Once(s) => phase_word(s.phase),
                LockStatus::RateLimit(s) => phase_word(s.phase),
            };
            (capacity, None, (phase, status.claims().clone()))
        }
    };
    let (phase, stored) = status;
    let claims = claims_of(
        stored.grants,
        stored.fencing_token,
        all.iter().copied(),
        panel.kind == "RWMutex",
    );
    panel.phase = phase;
    panel.active = claims.queue_length > 0;
    panel.waiting_since = oldest(&claims, &all);
    panel.summary = match &rate {
        Some(rate) => format!(
            "{} of {} used in {}, {} holding, {} waiting",
            rate.used,
            rate.limit,
            rate.window,
            claims.holders.len(),
            claims.queue_length
        ),
        None => format!(
            "{} of {} in use, {} waiting",
            claims.holders.len(),
            capacity,
            claims.queue_length
        ),
    };
    panel.view = View::Lock {
        capacity,
        claims,
        rate,
    };
    Some(())
}

fn once<'a>(panel: &mut Panel, once: Once, claims: impl Iterator<Item = &'a Claim>) {
    let status = once.status.unwrap_or_default();
    let all: Vec<&Claim> = claims.collect();
    let claims = claims_of(
        status.claims.grants.clone(),
        status.claims.fencing_token,
        all.iter().copied(),
        false,
    );
    panel.phase = phase_word(status.phase);
    panel.active = panel.phase == "Running" || claims.queue_length > 0;
    panel.waiting_since = oldest(&claims, &all);
    panel.summary = match &status.executor {
        Some(executor) if panel.phase == "Running" => {
            format!("key {} running on {executor}", status.key)
        }
        _ if status.key.is_empty() => "no key run yet".to_owned(),
        _ => format!("key {}: {}", status.key, panel.phase),
    };
    panel.view = View::Once {
        key: status.key,
        executor: status.executor,
        attempts: status.attempts,
        started_at: status.started_at.as_ref().map(time),
        completed_at: status.completed_at.as_ref().map(time),
        history: status
            .history
            .iter()
            .rev()
            .take(LIST_SHOWN)
            .map(|a| OnceAttempt {
                key: a.key.clone(),
                holder: a.holder.clone(),
                token: a.fencing_token,
                outcome: phase_word(a.outcome),
                finished_at: time(&a.finished_at),
                message: a.message.clone(),
            })
            .collect(),
        completed_keys: status
            .completed_keys
            .iter()
            .rev()
            .take(LIST_SHOWN)
            .map(|k| CompletedKey {
                key: k.key.clone(),
                phase: phase_word(k.phase),
                completed_at: time(&k.completed_at),
            })
            .collect(),
        claims,
    };
}

/// The grid's order: what needs a look first.
fn state_rank(state: &str) -> u8 {
    match state {
        "failed" => 0,
        "running" => 1,
        "pending" => 2,
        _ => 3,
    }
}

fn waitgroup<'a>(
    panel: &mut Panel,
    group: WaitGroup,
    claims: impl Iterator<Item = &'a Claim>,
    created: Option<String>,
) {
    let status = group.status.unwrap_or_default();
    let mut members: Vec<&MemberClaim> = claims
        .filter_map(|c| match c {
            Claim::Member(m) => Some(m),
            Claim::Permit(_) => None,
        })
        .collect();
    let mut by_state = BTreeMap::new();
    for member in &members {
        *by_state.entry(member.state).or_insert(0) += 1;
    }
    members.sort_by(|a, b| (state_rank(a.state), &a.name).cmp(&(state_rank(b.state), &b.name)));
    panel.set_phase(phase_word(status.phase), "Waiting", created);
    panel.summary = format!(
        "{} of {} done, {} failed, {} pending{}",
        status.done,
        group.spec.expected.unwrap_or(status.added),
        status.failed,
        status.counter,
        if group.spec.sealed { ", sealed" } else { "" }
    );
    panel.view = View::WaitGroup {
        expected: group.spec.expected,
        sealed: group.spec.sealed,
        added: status.added,
        done: status.done,
        failed: status.failed,
        counter: status.counter,
        by_state,
        cells: members
            .into_iter()
            .take(CELLS_SHOWN)
            .map(|m| MemberCell {
                name: m.name.clone(),
                state: m.state,
                message: m.message.clone(),
            })
            .collect(),
        deadline: status.lifecycle.deadline.as_ref().map(time),
    };
}

fn gate(panel: &mut Panel, gate: Gate, created: Option<String>) {
    let status = gate.status.unwrap_or_default();
    let total = gate.spec.conditions.len();
    panel.set_phase(phase_word(status.phase), "Waiting", created);
    let rule = match (gate.spec.min_met, &gate.spec.match_) {
        (Some(n), _) => format!("{n} of {total}"),
        (None, konductor_api::gate::GateMatch::Any) => "any".to_owned(),
        (None, _) => "all".to_owned(),
    };
    panel.summary = format!("{} of {} conditions met ({rule})", status.met, total);
    panel.view = View::Gate {
        rule,
        met: status.met,
        required: status.required,
        conditions: status
            .results
            .into_iter()
            .map(|r| GateCondition {
                target: r.target,
                test: r.test,
                met: r.met,
                failed: r.failed,
                since: r.since.as_ref().map(time),
                message: r.message,
            })
            .collect(),
        resume: gate
            .spec
            .resume
            .iter()
            .map(|target| {
                let result = status.resume.iter().find(|r| &r.target == target);
                ResumeTarget {
                    target: format!("{}/{}", target.kind.to_lowercase(), target.name),
                    state: result.map_or("Waiting".to_owned(), |r| phase_word(r.state)),
                    resumed_at: result.and_then(|r| r.resumed_at.as_ref().map(time)),
                    message: result.and_then(|r| r.message.clone()),
                }
            })
            .collect(),
        deadline: status.lifecycle.deadline.as_ref().map(time),
        opened_at: status.opened_at.as_ref().map(time),
    };
}

#[cfg(test)]
mod tests;
