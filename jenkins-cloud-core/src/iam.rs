//! What a backend may ask of AWS: one table per backend crate lists every API
//! operation its code can call and the IAM actions each needs, so that the
//! policy generator and the tests read one truth.
//!
//! The types are plain data (no AWS SDK here): a backend declares
//! `pub const OPERATIONS: &[AwsOperation]`, its tests check that every
//! operation the SDK sends is listed, and the program's `iam-policy` grants
//! exactly the listed actions the configuration needs.

/// When an action is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Need {
    /// Whenever the operation is called.
    Always,
    /// When the call carries tags (AWS authorises tag-on-create separately,
    /// with the `…:CreateAction` condition key).
    TagOnCreate,
    /// When a template names a role to pass (`iam:PassRole`).
    PassRole,
    /// When agent secrets are kept in SSM Parameter Store.
    SsmSecrets,
    /// When a template picks its image through an SSM parameter.
    SsmImage,
    /// When an image must be looked up: picked by a name filter, or its root
    /// device needed for a `root_volume`.
    ImageLookup,
    /// When launches are batched and tasks tagged after they start.
    Batching,
    /// When a template keeps a warm pool (stopped instances restarted).
    WarmPool,
    /// Only for the `check` command's probes.
    Check,
}

/// One IAM action an operation needs, with what AWS authorises it against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IamAction {
    /// The action (`ecs:RunTask`).
    pub action: &'static str,
    /// When it is needed.
    pub need: Need,
    /// The resource types AWS authorises it on (Service Authorization
    /// Reference, "Resource types" column); empty: only `*`.
    pub resource_types: &'static [&'static str],
    /// The condition keys the generated statement uses (each supported by the
    /// action, per the Service Authorization Reference).
    pub condition_keys: &'static [&'static str],
}

/// An API operation the backend's code can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsOperation {
    /// The operation as the SDK names it (`RunTask`), which is also what an
    /// SDK interceptor reports.
    pub operation: &'static str,
    /// The service (`ecs`, `ec2`, `ssm`).
    pub service: &'static str,
    /// The IAM actions it needs.
    pub actions: &'static [IamAction],
}

/// The operation named `operation` of `service` in `table`.
pub fn find<'a>(
    table: &'a [AwsOperation],
    service: &str,
    operation: &str,
) -> Option<&'a AwsOperation> {
    table
        .iter()
        .find(|o| o.service == service && o.operation == operation)
}

/// Every action of `table` whose need is in `needs`, sorted and unique.
pub fn actions(table: &[AwsOperation], needs: &[Need]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = table
        .iter()
        .flat_map(|o| o.actions.iter())
        .filter(|a| needs.contains(&a.need))
        .map(|a| a.action)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[AwsOperation] = &[AwsOperation {
        operation: "RunTask",
        service: "ecs",
        actions: &[
            IamAction {
                action: "ecs:RunTask",
                need: Need::Always,
                resource_types: &["task-definition"],
                condition_keys: &["ecs:cluster"],
            },
            IamAction {
                action: "ecs:TagResource",
                need: Need::TagOnCreate,
                resource_types: &["task"],
                condition_keys: &["ecs:CreateAction"],
            },
        ],
    }];

    #[test]
    fn actions_are_selected_by_need() {
        assert_eq!(actions(TABLE, &[Need::Always]), ["ecs:RunTask"]);
        assert_eq!(
            actions(TABLE, &[Need::Always, Need::TagOnCreate]),
            ["ecs:RunTask", "ecs:TagResource"]
        );
        assert!(find(TABLE, "ecs", "RunTask").is_some());
        assert!(find(TABLE, "ec2", "RunTask").is_none());
    }
}
