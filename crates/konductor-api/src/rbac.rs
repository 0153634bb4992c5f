//! The RBAC roles in `config/rbac/`, generated from the list of kinds
//! ([`crate::kinds`]): the operator's (`operator.yaml`: its ServiceAccount,
//! ClusterRole and bindings, and the Role for its leader-election Lease) and the
//! workloads' (`koncli-role.yaml`). A test keeps the committed files equal to these;
//! `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p konductor-api rbac` rewrites them.

use crate::crd::Access;
use crate::kinds;

/// One ClusterRole rule per kind (and per status subresource) with any verbs.
fn rules(access: impl Fn(&crate::crd::KindEntry) -> Access) -> String {
    let mut out = String::new();
    let list = |verbs: &[&str]| {
        verbs
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for kind in kinds() {
        let Access {
            verbs,
            status_verbs,
        } = access(&kind);
        let plural = &kind.crd.spec.names.plural;
        let group = &kind.crd.spec.group;
        if !verbs.is_empty() {
            out.push_str(&format!(
                "- apiGroups: [\"{group}\"]\n  resources: [\"{plural}\"]\n  verbs: [{}]\n",
                list(verbs)
            ));
        }
        if !status_verbs.is_empty() {
            out.push_str(&format!(
                "- apiGroups: [\"{group}\"]\n  resources: [\"{plural}/status\"]\n  verbs: [{}]\n",
                list(status_verbs)
            ));
        }
    }
    out
}

const GENERATED: &str = "# Generated from the list of kinds (crates/konductor-api/src/crd.rs); do not edit:\n\
# `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p konductor-api rbac` rewrites it.\n";

/// `config/rbac/operator.yaml`.
pub fn operator_yaml() -> String {
    format!(
        "{GENERATED}\
# Least privilege for konductor operator: what its controllers do with each kind, in\n\
# every namespace (read them, write their status, adopt claims made without an owner,\n\
# delete what has expired), read what Gates wait on, resume what Gates resume, record\n\
# events, and hold its leader-election Lease in its own namespace.\n\
apiVersion: v1\n\
kind: ServiceAccount\n\
metadata:\n  name: konductor-operator\n\
---\n\
apiVersion: rbac.authorization.k8s.io/v1\n\
kind: ClusterRole\n\
metadata:\n  name: konductor-operator\n\
rules:\n\
{}\
{}\
{}\
- apiGroups: [\"events.k8s.io\"]\n  resources: [\"events\"]\n  verbs: [\"create\", \"patch\"]\n\
---\n\
apiVersion: rbac.authorization.k8s.io/v1\n\
kind: ClusterRoleBinding\n\
metadata:\n  name: konductor-operator\n\
roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: konductor-operator\n\
subjects:\n- kind: ServiceAccount\n  name: konductor-operator\n  namespace: konductor-system\n\
---\n\
apiVersion: rbac.authorization.k8s.io/v1\n\
kind: Role\n\
metadata:\n  name: konductor-operator-leader-election\n\
rules:\n\
- apiGroups: [\"coordination.k8s.io\"]\n  resources: [\"leases\"]\n  verbs: [\"get\", \"create\", \"update\"]\n\
---\n\
apiVersion: rbac.authorization.k8s.io/v1\n\
kind: RoleBinding\n\
metadata:\n  name: konductor-operator-leader-election\n\
roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: konductor-operator-leader-election\n\
subjects:\n- kind: ServiceAccount\n  name: konductor-operator\n",
        rules(|kind| kind.controller),
        other_read_rules(
            "# Gates: read the kinds Gate presets name. To let Gates name another kind, add a\n\
# rule like these and name the kind in the operator's --gate-kinds.\n"
        ),
        resume_rules()
    )
}

/// Read and patch access to the kinds Gates resume (their `spec.suspend`): nothing
/// else — no create, update or delete.
fn resume_rules() -> String {
    let mut out =
        "# Gates: resume the suspended workloads that opted in (spec.suspend). To let Gates\n\
# resume another kind, add a rule like these and name it in the operator's --resume-kinds.\n"
            .to_owned();
    for (group, resource) in kinds().into_iter().flat_map(|kind| kind.also_resumes) {
        out.push_str(&format!(
            "- apiGroups: [\"{group}\"]\n  resources: [\"{resource}\"]\n  verbs: [\"get\", \"list\", \"watch\", \"patch\"]\n"
        ));
    }
    out
}

/// Read access to the kinds beyond Konductor's own that its kinds read (a Gate: Jobs,
/// Deployments — the presets' kinds), after `comment`.
fn other_read_rules(comment: &str) -> String {
    let mut out = comment.to_owned();
    for (group, resource) in kinds().into_iter().flat_map(|kind| kind.also_reads) {
        out.push_str(&format!(
            "- apiGroups: [\"{group}\"]\n  resources: [\"{resource}\"]\n  verbs: [\"get\", \"list\", \"watch\"]\n"
        ));
    }
    out
}

/// `config/rbac/koncli-role.yaml`.
pub fn workload_yaml() -> String {
    format!(
        "{GENERATED}\
# What a Job using koncli (or the SDK) needs, as a ClusterRole to bind per namespace\n\
# with a RoleBinding to the Job's ServiceAccount:\n\
#   kubectl create rolebinding etl-koncli --clusterrole=konductor-koncli \\\n\
#     --serviceaccount=NAMESPACE:SERVICEACCOUNT -n NAMESPACE\n\
# Barriers: wait and status read them; arrive creates an Arrival (and deletes a failure\n\
# report when the holder arrives after all). Locks: a holder follows its lock (get,\n\
# list, watch) and creates, renews (patch) and releases (delete) its Permit. Creating\n\
# the barriers and locks themselves is left to whoever sets them up.\n\
apiVersion: rbac.authorization.k8s.io/v1\n\
kind: ClusterRole\n\
metadata:\n  name: konductor-koncli\n\
rules:\n\
{}{}",
        rules(|kind| kind.workload),
        other_read_rules(
            "# `koncli wait --for job/NAME` (or deployment/NAME) reads what it waits for; add a\n\
# rule like these for any other kind it should wait on.\n"
        )
    )
}

/// The file names (under `config/rbac/`) and contents.
pub fn rbac_files() -> Vec<(&'static str, String)> {
    vec![
        ("operator.yaml", operator_yaml()),
        ("koncli-role.yaml", workload_yaml()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_rbac_roles_are_generated_from_the_list_of_kinds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/rbac");
        for (name, generated) in rbac_files() {
            let path = dir.join(name);
            if std::env::var_os("KONDUCTOR_WRITE_REFERENCE").is_some() {
                std::fs::write(&path, &generated).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap();
            assert!(
                committed == generated,
                "{} is out of date with the list of kinds; regenerate it with \
                 `KONDUCTOR_WRITE_REFERENCE=1 cargo test -p konductor-api rbac`",
                path.display()
            );
        }
    }

    #[test]
    fn every_kind_is_in_both_roles() {
        let (operator, workload) = (operator_yaml(), workload_yaml());
        for kind in kinds() {
            let plural = format!("[\"{}\"]", kind.crd.spec.names.plural);
            assert!(operator.contains(&plural), "{plural}");
            assert!(workload.contains(&plural), "{plural}");
        }
        for yaml in [operator, workload] {
            for document in serde_yaml::Deserializer::from_str(&yaml) {
                use serde::Deserialize;
                serde_yaml::Value::deserialize(document).expect("each document parses");
            }
        }
    }
}
