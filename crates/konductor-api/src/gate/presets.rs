//! What a condition without a test waits for, per kind — so users rarely write one:
//!
//! | kind | met when | fails when | observedGeneration |
//! |---|---|---|---|
//! | `batch/v1` Job | condition `Complete=True` (never `succeeded > 0`) | `Failed=True` | not published: not checked |
//! | `apps/v1` Deployment | `Available=True` | `Progressing=False` reason `ProgressDeadlineExceeded` | required: a status behind the spec never counts |
//! | Barrier | phase `Open` | phase `Failed` or `Timeout` | checked when present |
//! | Once | phase `Succeeded` | phase `Failed` | checked when present |
//! | WaitGroup | phase `Done` | phase `Failed` or `Timeout` | checked when present |
//! | Gate | phase `Open` | phase `Failed` or `Timeout` | checked when present |
//! | Mutex, RWMutex | phase `Unlocked` | — | checked when present |
//! | Semaphore | phase `Available` | — | checked when present |

use super::{ConditionStatus, JsonPathOp};
use crate::jsonpath::JsonPath;

/// A kind's preset.
#[derive(Clone, Debug)]
pub struct Preset {
    /// What meets the condition.
    pub test: Test,
    /// What fails it for good (a failed Job never completes).
    pub failure: Option<Test>,
    /// Whether the kind always publishes `status.observedGeneration`, so that its absence
    /// means "not observed yet" (a Deployment's controller sets it; a Job has none).
    pub publishes_observed_generation: bool,
}

/// A kind a preset exists for: its group, kind and resource (plural).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresetKind {
    /// API group (`batch`, `apps`, `konductor.io`).
    pub group: &'static str,
    /// Kind (`Job`).
    pub kind: &'static str,
    /// Resource (`jobs`).
    pub resource: &'static str,
}

/// Every kind with a preset: the kinds the operator may read for Gates by default.
pub const PRESET_KINDS: &[PresetKind] = &[
    PresetKind {
        group: "batch",
        kind: "Job",
        resource: "jobs",
    },
    PresetKind {
        group: "apps",
        kind: "Deployment",
        resource: "deployments",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "Barrier",
        resource: "barriers",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "Once",
        resource: "onces",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "WaitGroup",
        resource: "waitgroups",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "Gate",
        resource: "gates",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "Mutex",
        resource: "mutexes",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "RWMutex",
        resource: "rwmutexes",
    },
    PresetKind {
        group: crate::GROUP,
        kind: "Semaphore",
        resource: "semaphores",
    },
];

fn condition(type_: &str, status: ConditionStatus, reason: Option<&str>) -> Test {
    Test::Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.map(str::to_owned),
    }
}

fn phase(values: &[&str]) -> Test {
    Test::Path {
        path: JsonPath::parse(".status.phase").unwrap_or_else(|_| unreachable!()),
        op: if values.len() == 1 {
            JsonPathOp::Equals
        } else {
            JsonPathOp::In
        },
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// The preset for `kind` in `group`, if there is one.
pub fn preset(group: &str, kind: &str) -> Option<Preset> {
    let ours = |met: &[&str], failed: &[&str]| Preset {
        test: phase(met),
        failure: (!failed.is_empty()).then(|| phase(failed)),
        publishes_observed_generation: false,
    };
    match (group, kind) {
        ("batch", "Job") => Some(Preset {
            test: condition("Complete", ConditionStatus::True, None),
            failure: Some(condition("Failed", ConditionStatus::True, None)),
            publishes_observed_generation: false,
        }),
        ("apps", "Deployment") => Some(Preset {
            test: condition("Available", ConditionStatus::True, None),
            failure: Some(condition(
                "Progressing",
                ConditionStatus::False,
                Some("ProgressDeadlineExceeded"),
            )),
            publishes_observed_generation: true,
        }),
        (crate::GROUP, "Barrier") => Some(ours(&["Open"], &["Failed", "Timeout"])),
        (crate::GROUP, "Once") => Some(ours(&["Succeeded"], &["Failed"])),
        (crate::GROUP, "WaitGroup") => Some(ours(&["Done"], &["Failed", "Timeout"])),
        (crate::GROUP, "Gate") => Some(ours(&["Open"], &["Failed", "Timeout"])),
        (crate::GROUP, "Mutex" | "RWMutex") => Some(ours(&["Unlocked"], &[])),
        (crate::GROUP, "Semaphore") => Some(ours(&["Available"], &[])),
        _ => None,
    }
}

/// A resolved test on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// One of `status.conditions` has this type, status and (if given) reason.
    Condition {
        /// Its type.
        type_: String,
        /// The status it must have.
        status: ConditionStatus,
        /// The reason it must give, if any.
        reason: Option<String>,
    },
    /// A JSONPath's values checked with `op`.
    Path {
        /// The path.
        path: JsonPath,
        /// How its values are checked.
        op: JsonPathOp,
        /// What `Equals` (one) or `In` (any) accepts.
        values: Vec<String>,
    },
}

impl std::fmt::Display for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Test::Condition {
                type_,
                status,
                reason,
            } => {
                write!(f, "condition {type_}={}", status.as_str())?;
                if let Some(reason) = reason {
                    write!(f, " (reason {reason})")?;
                }
                Ok(())
            }
            Test::Path { path, op, values } => match op {
                JsonPathOp::Exists => write!(f, "{path} exists"),
                JsonPathOp::Equals => write!(f, "{path} = {}", values.join("")),
                JsonPathOp::In => write!(f, "{path} in [{}]", values.join(", ")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_kind_has_a_preset_and_nothing_else_does() {
        for kind in PRESET_KINDS {
            assert!(preset(kind.group, kind.kind).is_some(), "{kind:?}");
        }
        assert!(preset("", "Pod").is_none());
        assert!(preset("acme.example.com", "Job").is_none());
    }

    /// The next kind does not silently go without a preset: every kind the controllers
    /// reconcile has one, naming only phases its status can have, and every preset of
    /// ours is a registered kind.
    #[test]
    fn every_reconciled_kind_has_a_preset_naming_its_own_phases() {
        let kinds = crate::kinds();
        let ours: Vec<&str> = kinds
            .iter()
            .filter(|k| k.reconciled && k.gate_preset)
            .map(|k| k.crd.spec.names.kind.as_str())
            .collect();
        for kind in &ours {
            let preset = preset(crate::GROUP, kind)
                .unwrap_or_else(|| panic!("{kind} is reconciled but has no Gate preset"));
            assert!(
                PRESET_KINDS
                    .iter()
                    .any(|p| p.group == crate::GROUP && p.kind == *kind),
                "{kind} is missing from PRESET_KINDS"
            );
            let entry = kinds
                .iter()
                .find(|k| k.crd.spec.names.kind == *kind)
                .unwrap();
            let schema = serde_json::to_value(&entry.crd.spec.versions[0].schema).unwrap();
            let phases = schema
                .pointer("/openAPIV3Schema/properties/status/properties/phase/enum")
                .and_then(serde_json::Value::as_array)
                .unwrap_or_else(|| panic!("{kind}'s status has no phase enum"))
                .clone();
            for test in std::iter::once(&preset.test).chain(preset.failure.as_ref()) {
                let Test::Path { values, .. } = test else {
                    panic!("{kind}'s preset reads its phase");
                };
                for value in values {
                    assert!(
                        phases.contains(&serde_json::Value::from(value.as_str())),
                        "{kind}'s preset names phase {value}, not one of {phases:?}"
                    );
                }
            }
        }
        for p in PRESET_KINDS.iter().filter(|p| p.group == crate::GROUP) {
            assert!(
                ours.contains(&p.kind),
                "a preset for {}, which is no reconciled kind",
                p.kind
            );
        }
    }

    #[test]
    fn a_job_completes_by_its_condition_and_a_deployment_by_availability_at_its_generation() {
        let job = preset("batch", "Job").unwrap();
        assert_eq!(job.test.to_string(), "condition Complete=True");
        assert_eq!(job.failure.unwrap().to_string(), "condition Failed=True");
        assert!(!job.publishes_observed_generation);
        let deployment = preset("apps", "Deployment").unwrap();
        assert_eq!(deployment.test.to_string(), "condition Available=True");
        assert!(deployment.publishes_observed_generation);
        assert_eq!(
            preset(crate::GROUP, "Barrier").unwrap().test.to_string(),
            "{.status.phase} = Open"
        );
    }
}
