//! `import-jcasc`: converts the clouds of a Jenkins Configuration-as-Code file
//! written for the amazon-ecs plugin (`ecs:`) and the ec2 plugin
//! (`amazonEC2:`) into this program's configuration.
//!
//! Both shapes are read: a full `jenkins.yaml` (`jenkins.clouds`) and what
//! "Manage Jenkins → Configuration as Code → View/Export" gives for clouds, a
//! top-level list (`- amazonEC2: …`). JCasC variables (`${VAR}`,
//! `${VAR:-default}`, `^${` as the escape) are resolved from the environment
//! ([`crate::config::interpolate`]); with [`ImportOptions::keep_variables`]
//! those in fields copied as text stay variables in the output, which our
//! loader resolves the same way.
//!
//! Field names follow the plugins' `@DataBoundConstructor` / `@DataBoundSetter`
//! names (`ECSCloud`, `ECSTaskTemplate`; `EC2Cloud`, `SlaveTemplate`,
//! `SpotConfiguration`, `MinimumNumberOfInstancesTimeRangeConfig`,
//! `HotSpareConfigByLabel`). Every field that is not carried over is named in
//! [`Imported::notes`] with the reason; none is dropped silently. What the
//! operator still has to do is in [`Imported::checklist`]. The result is
//! checked with [`Config::parse`] before it is returned.

mod ec2;
mod ec2_minimums;
mod ecs;
mod output;
mod values;
mod variables;

use serde_json::{json, Value};

use super::CommandError;
use crate::config::yaml::Document;
use crate::config::{process_env, Config};
use output::{OutFile, OutJenkins};
use values::{text, Notes};

/// The converted configuration and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The configuration file (YAML), loadable with [`Config::parse`].
    pub yaml: String,
    /// One line per field not carried over (or carried over approximately), with why.
    pub notes: Vec<String>,
    /// What the operator still has to do before the first `run`, in order.
    pub checklist: Vec<String>,
}

/// How [`import_with`] converts.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Keep `${VAR}` references in fields copied as text (cluster, image,
    /// URL, roles…) instead of resolving them now.
    pub keep_variables: bool,
}

/// Converts JCasC text with variables from the process environment; `file`
/// names it in errors.
pub fn import(text_in: &str, file: &str) -> Result<Imported, CommandError> {
    import_with(text_in, file, &ImportOptions::default(), &process_env)
}

/// Where the clouds are: `jenkins.clouds`, a top-level `clouds` list, or the
/// exported top-level list itself; with the path prefix of each item.
fn locate_clouds<'a>(
    root: &'a Value,
    file: &str,
) -> Result<(&'a [Value], &'static str), CommandError> {
    if let Some(list) = root.as_array() {
        return Ok((list, ""));
    }
    if let Some(list) = root
        .get("jenkins")
        .and_then(|j| j.get("clouds"))
        .and_then(Value::as_array)
    {
        return Ok((list, "jenkins.clouds"));
    }
    if let Some(list) = root.get("clouds").and_then(Value::as_array) {
        return Ok((list, "clouds"));
    }
    Err(CommandError(format!(
        "{file}: no clouds found: expected a `jenkins.clouds` list (a full jenkins.yaml) or a top-level list of clouds (`- amazonEC2: …`, as Configuration as Code exports them)"
    )))
}

/// [`import`] with options and the environment variables to resolve.
pub fn import_with(
    text_in: &str,
    file: &str,
    options: &ImportOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, CommandError> {
    let doc = Document::parse(text_in)
        .map_err(|e| CommandError(format!("{file}: not valid YAML: {e}")))?;
    let mut root = doc.value;
    let kept = variables::resolve(&mut root, env, options.keep_variables);
    values::take_read_failures();
    let (clouds, prefix) = locate_clouds(&root, file)?;
    let mut notes = Notes::default();
    let mut converted = Converted::default();
    for (i, entry) in clouds.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let Some(obj) = entry.as_object() else {
            notes.add(&path, "skipped: not a mapping");
            continue;
        };
        for (kind, body) in obj {
            let path = format!("{path}.{kind}");
            match kind.as_str() {
                "ecs" => ecs::cloud(body, &path, &mut notes, &mut converted),
                "amazonEC2" | "ec2" => ec2::cloud(body, &path, &mut notes, &mut converted),
                other => notes.add(
                    &path,
                    format!(
                        "skipped: `{other}` clouds are not converted (only `ecs` and `amazonEC2`)"
                    ),
                ),
            }
        }
    }
    if converted.clouds.is_empty() {
        return Err(CommandError(format!(
            "{file}: no `ecs` or `amazonEC2` cloud with a usable template{}",
            if notes.0.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", notes.0.join("\n  "))
            }
        )));
    }
    let location = root
        .get("unclassified")
        .and_then(|u| u.get("location"))
        .and_then(|l| l.get("url"))
        .and_then(text);
    let url_found = location.is_some() || converted.jenkins_url.is_some();
    let url = location
        .or(converted.jenkins_url.take())
        .unwrap_or_else(|| "https://jenkins.example.invalid/".to_owned());
    let caps = match converted.caps.as_slice() {
        [] => None,
        [(_, n)] => Some(json!({"global": n})),
        many => {
            for (path, _) in many {
                notes.add(
                    path,
                    "not carried: several clouds have a cap and caps here are global or per label; set `caps` by hand",
                );
            }
            None
        }
    };
    let mut out = OutFile {
        owner: "jenkins-cloud".into(),
        jenkins: OutJenkins {
            url,
            user: "jenkins-cloud".into(),
            token_env: "JENKINS_API_TOKEN".into(),
        },
        caps,
        clouds: std::mem::take(&mut converted.clouds),
    };
    out.for_each_expanded_string(&mut |s| kept.finish(s));
    let body = serde_saphyr::to_string(&out)
        .map_err(|e| CommandError(format!("cannot write the configuration: {e}")))?;
    let mut read = values::take_read_failures();
    read.extend(variables::failures_in(&body));
    read.sort_unstable();
    read.dedup();
    if !read.is_empty() {
        let errors = kept.failures(&read);
        return Err(CommandError(format!(
            "{file}: {} value{} with variables cannot be resolved:\n  {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors.join("\n  ")
        )));
    }
    let yaml = format!(
        "# Converted by `jenkins-cloud import-jcasc` from {file}.\n# Work through the checklist printed with it; see docs/operations.md.\n{body}"
    );
    let unset = variables::unset_here(&kept, env);
    if unset.is_empty() {
        if let Err(e) = Config::parse_with_env(&yaml, "<imported>", env) {
            return Err(CommandError(format!(
                "{file}: the converted configuration does not validate; fix the JCasC values named below (or edit the output by hand):\n{e}\nnotes:\n  {}",
                notes.0.join("\n  ")
            )));
        }
    }
    let checklist = checklist(&converted, url_found, &unset, kept.references(), &notes);
    Ok(Imported {
        yaml,
        notes: notes.0,
        checklist,
    })
}

/// What the converters found that the checklist needs.
#[derive(Default)]
pub(crate) struct Converted {
    clouds: Vec<output::OutCloud>,
    jenkins_url: Option<String>,
    caps: Vec<(String, i64)>,
    used_names: Vec<String>,
    /// The ECS `tunnel` (the agent TCP port behind a load balancer).
    tunnel: Option<String>,
    /// Security groups given by name, to confirm with `check`.
    group_names: Vec<String>,
    windows: bool,
}

fn checklist(
    converted: &Converted,
    url_found: bool,
    unset: &[String],
    kept: &[String],
    notes: &Notes,
) -> Vec<String> {
    let mut list = vec![
        "Create a Jenkins user for jenkins-cloud with Overall/Read and Agent/Create, Connect, Disconnect and Delete (docs/jenkins.md, \"Permissions\"), and an API token for it; set `jenkins.user`.".to_owned(),
        "Give the token to the program through JENKINS_API_TOKEN (or change `jenkins.token_env`, or use `jenkins.token_file`).".to_owned(),
        "Choose `owner`: a short id naming this installation (agents and AWS resources are tagged with it); keep it stable.".to_owned(),
    ];
    if !url_found {
        list.push("Set `jenkins.url`: neither `unclassified.location.url` nor a cloud `jenkinsUrl` was found.".into());
    } else {
        list.push("Check `jenkins.url`: agents connect to it over WebSocket (HTTPS).".into());
    }
    if let Some(t) = &converted.tunnel {
        list.push(format!(
            "The ECS `tunnel` ({t}) is replaced by WebSocket: agents reach Jenkins on its URL, so the load balancer for the agent TCP port can go once the plugin is gone."
        ));
    }
    if !kept.is_empty() {
        list.push(format!(
            "Set the variables kept in the configuration wherever the program runs: {}.",
            kept.join(", ")
        ));
    }
    if !unset.is_empty() {
        list.push(format!(
            "Not validated here, as these variables are not set here: {}; run `jenkins-cloud check` where they are.",
            unset.join(", ")
        ));
    }
    if !converted.group_names.is_empty() {
        list.push(format!(
            "Security groups given by name ({}): `jenkins-cloud check` shows the id each resolves to in the subnets' VPC.",
            converted.group_names.join(", ")
        ));
    }
    if converted.windows {
        list.push("Windows templates: the AMI needs Java and the AWS Tools for PowerShell or CLI (docs/ec2.md, \"Windows agents\").".into());
    }
    list.push("Grant the AWS permissions: `jenkins-cloud iam-policy` prints the policy for this configuration.".into());
    if !notes.0.is_empty() {
        list.push(format!(
            "Review the {} notes above: settings not carried or carried approximately.",
            notes.0.len()
        ));
    }
    list.push("Run `jenkins-cloud check`, then `jenkins-cloud plan`, before `run`; switch the plugin's clouds off (or set their caps to 0) when this takes over, so both do not launch for the same queue.".into());
    list
}
