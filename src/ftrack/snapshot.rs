//! What ftrack holds now: users (with ldap2ftrack's metadata), groups, memberships, security
//! roles and their grants, projects — read with one paged query per entity type, all
//! concurrently, never one query per user.

use super::session::{FtrackError, Session};
use arcstr::ArcStr;
use litemap::LiteMap;
use serde::{Deserialize, Serialize};

/// Metadata keys written by ldap2ftrack start with this; only those are read.
pub const METADATA_PREFIX: &str = "ldap2ftrack.";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackSnapshot {
    pub users: Vec<FtrackUser>,
    pub groups: Vec<FtrackGroup>,
    pub memberships: Vec<FtrackMembership>,
    pub security_roles: Vec<FtrackSecurityRole>,
    pub user_security_roles: Vec<FtrackUserSecurityRole>,
    pub projects: Vec<FtrackProject>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackUser {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub is_active: bool,
    /// ldap2ftrack's own metadata on the user (`ldap2ftrack.anchor`, …): a sorted vector,
    /// as a user has one to three keys and a BTreeMap node per user was 50 MB at 100,000.
    /// An empty map is left out (litemap writes an empty map as `[]`).
    #[serde(default, skip_serializing_if = "LiteMap::is_empty")]
    pub metadata: LiteMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub local: bool,
}

/// A membership. The user and group ids are shared with every other membership of the same
/// user or group (interned after the read): at 100,000 users there are 325,000 of them, and
/// a copy of both ids in each was 50 MB of a plan's peak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackMembership {
    pub id: String,
    pub user_id: ArcStr,
    pub group_id: ArcStr,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackSecurityRole {
    pub id: String,
    pub name: String,
    #[serde(default, rename = "type")]
    pub role_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackUserSecurityRole {
    pub id: String,
    pub user_id: String,
    pub security_role_id: String,
    #[serde(default)]
    pub is_all_open_projects: bool,
    /// Projects the grant is scoped to (from UserSecurityRoleProject).
    #[serde(default)]
    pub project_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackProject {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// A `Metadata` row as queried (also read back by apply to recognise a landed batch).
#[derive(Deserialize)]
pub(crate) struct MetadataRow {
    pub parent_id: String,
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// A `UserSecurityRoleProject` row as queried: one project scope of a user's role.
#[derive(Deserialize)]
pub(crate) struct RoleProjectRow {
    pub user_security_role_id: String,
    pub project_id: String,
}

impl FtrackSnapshot {
    /// Reads everything with a handful of concurrent paged queries.
    pub async fn read(session: &Session) -> Result<FtrackSnapshot, FtrackError> {
        let metadata_query = format!(
            "select parent_id, key, value from Metadata where key like \"{METADATA_PREFIX}%\" order by parent_id"
        );
        let (users, groups, memberships, roles, grants, scopes, projects, metadata) = tokio::try_join!(
            rows::<FtrackUser>(
                session,
                "select id, username, email, first_name, last_name, is_active from User order by id"
            ),
            rows::<FtrackGroup>(session, "select id, name, parent_id, local from Group order by id"),
            rows::<FtrackMembership>(session, "select id, user_id, group_id from Membership order by id"),
            rows::<FtrackSecurityRole>(session, "select id, name, type from SecurityRole order by id"),
            rows::<FtrackUserSecurityRole>(
                session,
                "select id, user_id, security_role_id, is_all_open_projects from UserSecurityRole order by id"
            ),
            rows::<RoleProjectRow>(
                session,
                "select id, user_security_role_id, project_id from UserSecurityRoleProject order by id"
            ),
            rows::<FtrackProject>(session, "select id, name, status from Project order by id"),
            rows::<MetadataRow>(session, &metadata_query),
        )?;
        let mut snapshot = FtrackSnapshot {
            users,
            groups,
            memberships,
            security_roles: roles,
            user_security_roles: grants,
            projects,
        };
        let user_index: std::collections::HashMap<String, usize> = snapshot
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        for row in metadata {
            if let Some(&i) = user_index.get(&row.parent_id) {
                snapshot.users[i]
                    .metadata
                    .insert(row.key, row.value.unwrap_or_default());
            }
        }
        let grant_index: std::collections::HashMap<String, usize> = snapshot
            .user_security_roles
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i))
            .collect();
        for scope in scopes {
            if let Some(&i) = grant_index.get(&scope.user_security_role_id) {
                snapshot.user_security_roles[i]
                    .project_ids
                    .push(scope.project_id);
            }
        }
        for grant in &mut snapshot.user_security_roles {
            grant.project_ids.sort();
        }
        snapshot.share_membership_ids();
        Ok(snapshot)
    }
}

impl FtrackSnapshot {
    /// Makes every membership hold its user's and group's id as one shared string each.
    fn share_membership_ids(&mut self) {
        let mut shared: rustc_hash::FxHashSet<ArcStr> = rustc_hash::FxHashSet::default();
        let mut intern = |id: &mut ArcStr| match shared.get(id.as_str()) {
            Some(kept) => *id = kept.clone(),
            None => {
                shared.insert(id.clone());
            }
        };
        for m in &mut self.memberships {
            intern(&mut m.user_id);
            intern(&mut m.group_id);
        }
    }
}

async fn rows<T: serde::de::DeserializeOwned>(
    session: &Session,
    expression: &str,
) -> Result<Vec<T>, FtrackError> {
    session.query_all_as(expression).await
}
