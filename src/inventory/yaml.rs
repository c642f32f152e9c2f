//! YAML inventories (`inventories/*.yml`) for pplay: groups of hosts (ranges
//! allowed) with child groups, and variables for everyone, per group and per
//! host. A plain pssh hosts file works too: one group, `all`, no variables.
//!
//! A host's variables merge in this order, later winning: the top-level
//! `vars`, then each group it belongs to, parents before children and
//! otherwise in file order, then its own entry under `hosts:`. The
//! variables `user` and `port` fill the host entry's own; `address` (as
//! Ansible's `ansible_host`) is where a host named otherwise is reached, and
//! its `port` then goes with the address, so that the host is known by its
//! name alone. What the others mean (`identity_file`, say) is for the
//! layers above to say.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{parse_host_spec, read_hosts_file, Host, HostSpec, InventoryError, MAX_HOSTS};
use crate::model::{check_host_name, valid_name, Vars};
use crate::pattern::wildcard_match;
use crate::yaml::{self, Scalar, YamlError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    vars: Option<Spanned<BTreeMap<String, Scalar>>>,
    #[serde(default)]
    groups: Vec<Spanned<GroupEntry>>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<BTreeMap<String, Scalar>>>,
}

/// `groups:` is a list so that file order (which decides merges) is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    children: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, Scalar>,
}

/// One host of an inventory with everything known about it.
#[derive(Debug, Clone)]
pub struct InventoryHost {
    pub host: Host,
    /// Merged variables (see the module documentation).
    pub vars: Vars,
    /// Groups it belongs to, directly or through a child group.
    pub groups: Vec<String>,
}

/// Every host of an inventory file, in the order the file first names them.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub hosts: Vec<InventoryHost>,
    /// Every group name, to tell a pattern matching nothing from a typo.
    pub groups: Vec<String>,
}

impl Inventory {
    /// Reads a YAML inventory (`.yml`/`.yaml`) or a pssh hosts file.
    pub fn load(path: &Path) -> Result<Inventory, YamlError> {
        let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if !is_yaml {
            return hosts_file(path);
        }
        let file: InventoryFile = yaml::load(path)?;
        Builder::new(path, &file)?.build(&file)
    }

    /// The hosts matching `patterns` (see [`matches_patterns`]).
    pub fn select(&self, patterns: &str) -> Vec<InventoryHost> {
        self.hosts
            .iter()
            .filter(|entry| matches_patterns(entry, patterns))
            .cloned()
            .collect()
    }
}

/// Whether a host matches any of the comma-separated `patterns`: group
/// names or host names, `*` and `?` allowed; `all` is everyone.
pub fn matches_patterns(entry: &InventoryHost, patterns: &str) -> bool {
    patterns.split(',').map(str::trim).any(|pattern| {
        pattern == "all"
            || wildcard_match(pattern, &entry.host.label())
            || wildcard_match(pattern, &entry.host.name)
            || entry.groups.iter().any(|g| wildcard_match(pattern, g))
    })
}

fn hosts_file(path: &Path) -> Result<Inventory, YamlError> {
    let hosts = read_hosts_file(path).map_err(|error| {
        let (line, column, message) = match error {
            InventoryError::Syntax { line, message, .. } => (line, 1, message),
            InventoryError::NotUtf8 { line, column, .. } => (line, column, "not UTF-8".into()),
            InventoryError::Read { source, .. } => (0, 0, format!("cannot read: {source}")),
        };
        YamlError {
            path: path.to_path_buf(),
            line: line as u64,
            column: column as u64,
            message,
        }
    })?;
    Ok(Inventory {
        path: path.to_path_buf(),
        hosts: hosts
            .into_iter()
            .map(|host| InventoryHost {
                host,
                vars: Vars::new(),
                groups: vec!["all".into()],
            })
            .collect(),
        groups: vec!["all".into()],
    })
}

/// How deep `children` may nest: far beyond any real hierarchy, and well
/// within the stack of the recursion that resolves it.
const MAX_GROUP_DEPTH: usize = 100;

/// Resolves groups (members, children, depth) before hosts are merged.
struct Builder<'a> {
    path: &'a Path,
    /// Group name → index in the file.
    index: HashMap<&'a str, usize>,
    /// Each group's hosts, with those of its children, once each.
    members: Vec<Members>,
    /// Longest distance from a group no one lists as a child: parents merge first.
    depth: Vec<usize>,
}

/// A group's hosts in file order, each once, with a set to ask quickly.
#[derive(Debug, Default, Clone)]
struct Members {
    order: Vec<Host>,
    set: HashSet<Host>,
}

impl Members {
    fn add(&mut self, host: &Host) {
        if self.set.insert(host.clone()) {
            self.order.push(host.clone());
        }
    }
}

impl<'a> Builder<'a> {
    fn new(path: &'a Path, file: &'a InventoryFile) -> Result<Self, YamlError> {
        if let Some(vars) = &file.vars {
            check_vars(path, vars, &vars.value)?;
        }
        let mut index = HashMap::new();
        for (position, group) in file.groups.iter().enumerate() {
            let name = group.value.name.as_str();
            if index.insert(name, position).is_some() {
                return Err(YamlError::at(
                    path,
                    group.referenced,
                    format!("group `{name}` is defined twice"),
                ));
            }
            check_vars(path, group, &group.value.vars)?;
        }
        check_budget(path, file)?;
        let mut builder = Builder {
            path,
            index,
            members: Vec::new(),
            depth: vec![0; file.groups.len()],
        };
        let mut resolved = vec![None; file.groups.len()];
        for position in 0..file.groups.len() {
            builder.members_of(file, position, &mut Vec::new(), &mut resolved)?;
        }
        builder.members = resolved
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        builder.set_depths(file);
        Ok(builder)
    }

    /// A group's hosts, then its children's, each group resolved once;
    /// `trail` catches cycles.
    fn members_of(
        &mut self,
        file: &InventoryFile,
        position: usize,
        trail: &mut Vec<usize>,
        resolved: &mut Vec<Option<Members>>,
    ) -> Result<Members, YamlError> {
        let group = &file.groups[position];
        if trail.contains(&position) {
            return Err(YamlError::at(
                self.path,
                group.referenced,
                format!("group `{}` contains itself", group.value.name),
            ));
        }
        if let Some(members) = &resolved[position] {
            return Ok(members.clone());
        }
        let error = |message: String| {
            YamlError::at(
                self.path,
                group.referenced,
                format!("group `{}`: {message}", group.value.name),
            )
        };
        let mut members = Members::default();
        for spec in &group.value.hosts {
            let expanded = parse_host_spec(spec)
                .map_err(|message| error(format!("host `{spec}`: {message}")))?;
            expanded.iter().for_each(|host| members.add(host));
        }
        if trail.len() >= MAX_GROUP_DEPTH {
            return Err(error(format!(
                "groups nest more than {MAX_GROUP_DEPTH} levels deep here; flatten the hierarchy"
            )));
        }
        trail.push(position);
        for child in &group.value.children {
            let Some(&child_position) = self.index.get(child.as_str()) else {
                return Err(error(format!(
                    "child `{child}` is not a group of this inventory"
                )));
            };
            let child_members = self.members_of(file, child_position, trail, resolved)?;
            child_members
                .order
                .iter()
                .for_each(|host| members.add(host));
        }
        trail.pop();
        resolved[position] = Some(members.clone());
        Ok(members)
    }

    /// Each group's longest distance from a group no one lists as a child
    /// (the groups are known to hold no cycle by now).
    fn set_depths(&mut self, file: &InventoryFile) {
        for _ in 0..file.groups.len() {
            for (parent, group) in file.groups.iter().enumerate() {
                for child in &group.value.children {
                    if let Some(&child) = self.index.get(child.as_str()) {
                        self.depth[child] = self.depth[child].max(self.depth[parent] + 1);
                    }
                }
            }
        }
    }

    fn build(self, file: &InventoryFile) -> Result<Inventory, YamlError> {
        let mut order = Members::default();
        for host in self.members.iter().flat_map(|m| &m.order) {
            order.add(host);
        }
        let own = self.host_entries(file)?;
        for host in own.keys() {
            order.add(host);
        }
        let mut merge_order: Vec<usize> = (0..file.groups.len()).collect();
        merge_order.sort_by_key(|&position| (self.depth[position], position));
        let hosts = order
            .order
            .into_iter()
            .map(|host| self.host(file, &merge_order, &own, host))
            .collect();
        Ok(Inventory {
            path: self.path.to_path_buf(),
            hosts,
            groups: file.groups.iter().map(|g| g.value.name.clone()).collect(),
        })
    }

    /// The `hosts:` map, keyed by the hosts its specs name.
    fn host_entries(&self, file: &InventoryFile) -> Result<HashMap<Host, Vars>, YamlError> {
        let mut entries = HashMap::new();
        for (spec, vars) in &file.hosts {
            check_vars(self.path, vars, &vars.value)?;
            let hosts = parse_host_spec(spec).map_err(|message| {
                YamlError::at(
                    self.path,
                    vars.referenced,
                    format!("host `{spec}`: {message}"),
                )
            })?;
            for host in hosts {
                entries.insert(host, to_vars(&vars.value));
            }
        }
        Ok(entries)
    }

    fn host(
        &self,
        file: &InventoryFile,
        merge_order: &[usize],
        own: &HashMap<Host, Vars>,
        mut host: Host,
    ) -> InventoryHost {
        let mut vars = file
            .vars
            .as_ref()
            .map(|vars| to_vars(&vars.value))
            .unwrap_or_default();
        let mut groups = Vec::new();
        for &position in merge_order {
            if self.members[position].set.contains(&host) {
                let group = &file.groups[position].value;
                vars.extend(to_vars(&group.vars));
                groups.push(group.name.clone());
            }
        }
        if let Some(own) = own.get(&host) {
            vars.extend(own.clone());
        }
        if host.user.is_none() {
            host.user = vars.get("user").cloned();
        }
        if host.port.is_none() && !vars.contains_key("address") {
            host.port = vars.get("port").and_then(|port| port.parse().ok());
        }
        InventoryHost { host, vars, groups }
    }
}

/// Counts every host the file names before any is made, as hosts files do.
fn check_budget(path: &Path, file: &InventoryFile) -> Result<(), YamlError> {
    let groups = file.groups.iter().flat_map(|group| {
        group
            .value
            .hosts
            .iter()
            .map(move |spec| (spec.as_str(), group.referenced))
    });
    let entries = file
        .hosts
        .iter()
        .map(|(spec, vars)| (spec.as_str(), vars.referenced));
    let mut total = 0usize;
    for (spec, location) in groups.chain(entries) {
        let error = |message: String| YamlError::at(path, location, message);
        let count = HostSpec::parse(spec)
            .and_then(|parsed| parsed.count())
            .map_err(|message| error(format!("host `{spec}`: {message}")))?;
        total = total.saturating_add(count);
        if total > MAX_HOSTS {
            return Err(error(format!(
                "the inventory expands to more than {MAX_HOSTS} hosts"
            )));
        }
    }
    Ok(())
}

fn to_vars(map: &BTreeMap<String, Scalar>) -> Vars {
    map.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Variable names must be usable in templates; `port` must be a port.
fn check_vars<T>(
    path: &Path,
    at: &Spanned<T>,
    vars: &BTreeMap<String, Scalar>,
) -> Result<(), YamlError> {
    for (name, value) in vars {
        if !valid_name(name) {
            return Err(YamlError::at(
                path,
                at.referenced,
                format!("`{name}` is not a variable name (letters, digits, `_`, `-`, `.`)"),
            ));
        }
        if name == "address" {
            check_host_name(&value.0)
                .map_err(|why| YamlError::at(path, at.referenced, format!("address: {why}")))?;
        }
        if name == "port" && value.0.parse::<u16>().map_or(true, |port| port == 0) {
            return Err(YamlError::at(
                path,
                at.referenced,
                format!(
                    "port: expected a number from 1 to 65535, found `{}`",
                    value.0
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, YamlError> {
        let path = Path::new("inv.yml");
        let file: InventoryFile = yaml::parse(text, path)?;
        Builder::new(path, &file)?.build(&file)
    }

    #[test]
    fn merges_vars_parents_first_then_host() {
        let inventory = parse(
            "vars: {role: none, user: root}\n\
             groups:\n\
             - name: canary\n  hosts: ['web1']\n  vars: {role: canary}\n\
             - name: web\n  hosts: ['web[1-3]']\n  children: [canary]\n  vars: {role: web, port: 2222}\n\
             hosts:\n  web2: {role: special}\n",
        )
        .unwrap();
        let names: Vec<_> = inventory.hosts.iter().map(|h| h.host.label()).collect();
        assert_eq!(names, ["web1:2222", "web2:2222", "web3:2222"]);
        let role = |i: usize| inventory.hosts[i].vars["role"].clone();
        assert_eq!([role(0), role(1), role(2)], ["canary", "special", "web"]);
        assert_eq!(inventory.hosts[0].host.user.as_deref(), Some("root"));
        assert_eq!(inventory.select("canary").len(), 1);
        assert_eq!(inventory.select("web,canary").len(), 3);
        assert_eq!(inventory.select("web3*").len(), 1);
    }

    #[test]
    fn a_pssh_hosts_file_is_one_group_and_its_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "web[1-2]\nroot@db:2222\n").unwrap();
        let inventory = Inventory::load(&path).unwrap();
        assert_eq!(inventory.select("all").len(), 3);
        std::fs::write(&path, "web1\nweb2:99999\n").unwrap();
        let error = Inventory::load(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:2:1: ", path.display())),
            "{error}"
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let error = parse("groups:\n- name: a\n  children: [b]\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.to_string().starts_with("inv.yml:2:"), "{error}");
        assert!(error.to_string().contains("child `b`"), "{error}");
        let error = parse("groups:\n- name: a\n  hots: [x]\n").unwrap_err();
        assert!(error.to_string().starts_with("inv.yml:3:"), "{error}");
        let chain: String = (0..150)
            .map(|i| format!("- name: g{i}\n  children: [g{}]\n", i + 1))
            .collect();
        let error = parse(&format!("groups:\n{chain}- name: g150\n")).unwrap_err();
        assert!(error.message.contains("more than 100 levels"), "{error}");
        let error = parse("groups:\n- name: a\n  children: [a]\n").unwrap_err();
        assert!(error.to_string().contains("contains itself"), "{error}");
        let error = parse("vars: {port: http}\n").unwrap_err();
        assert!(error.to_string().contains("port: expected"), "{error}");
    }
}
