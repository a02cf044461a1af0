//! What ftrack holds now: users (with ldap2ftrack's metadata), groups, memberships, security
//! roles and their grants, projects — read with one paged query per entity type, all
//! concurrently, never one query per user. An incremental run reads the memberships and
//! grants of the users it plans for only, a few hundred users a query.

use super::query::in_list;
use super::row_id::RowId;
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
/// a copy of both ids in each was 50 MB of a plan's peak. Its own id is a [`RowId`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrackMembership {
    pub id: RowId,
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
    pub id: RowId,
    /// Shared like a membership's ids.
    pub user_id: ArcStr,
    pub security_role_id: ArcStr,
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
    pub user_security_role_id: RowId,
    pub project_id: String,
}

/// Users whose memberships and grants one query asks for (`user_id in (…)`).
const IDS_PER_QUERY: usize = 200;

impl FtrackSnapshot {
    /// Reads everything with a handful of concurrent paged queries.
    pub async fn read(session: &Session) -> Result<FtrackSnapshot, FtrackError> {
        let (mut snapshot, (memberships, grants)) =
            tokio::try_join!(Self::read_people(session), read_links(session, None))?;
        snapshot.memberships = memberships;
        snapshot.user_security_roles = grants;
        snapshot.share_link_ids();
        Ok(snapshot)
    }

    /// Everything but the memberships and role grants: users (with ldap2ftrack's
    /// metadata), groups, roles and projects. An incremental run reads this whole (a
    /// username is matched against every user) and the links only for the users it plans
    /// for ([`FtrackSnapshot::read_links`]).
    pub async fn read_people(session: &Session) -> Result<FtrackSnapshot, FtrackError> {
        let metadata_query = format!(
            "select parent_id, key, value from Metadata where key like \"{METADATA_PREFIX}%\" order by parent_id"
        );
        let (users, groups, roles, projects, metadata) = tokio::try_join!(
            rows::<FtrackUser>(
                session,
                "select id, username, email, first_name, last_name, is_active from User order by id"
            ),
            rows::<FtrackGroup>(session, "select id, name, parent_id, local from Group order by id"),
            rows::<FtrackSecurityRole>(session, "select id, name, type from SecurityRole order by id"),
            rows::<FtrackProject>(session, "select id, name, status from Project order by id"),
            rows::<MetadataRow>(session, &metadata_query),
        )?;
        let mut snapshot = FtrackSnapshot {
            users,
            groups,
            security_roles: roles,
            projects,
            ..FtrackSnapshot::default()
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
        Ok(snapshot)
    }

    /// Fills in the memberships and role grants of a snapshot read by
    /// [`FtrackSnapshot::read_people`]: of its users only (narrowed; `IDS_PER_QUERY` users a
    /// query), or everyone's.
    pub async fn read_links(
        &mut self,
        session: &Session,
        of_these_users_only: bool,
    ) -> Result<(), FtrackError> {
        let ids: Vec<&str> = self.users.iter().map(|u| u.id.as_str()).collect();
        let only = of_these_users_only.then_some(ids.as_slice());
        let (memberships, grants) = read_links(session, only).await?;
        self.memberships = memberships;
        self.user_security_roles = grants;
        self.share_link_ids();
        Ok(())
    }
}

/// Memberships and role grants (with their project scopes, sorted): everyone's, or those of
/// `user_ids`.
async fn read_links(
    session: &Session,
    user_ids: Option<&[&str]>,
) -> Result<(Vec<FtrackMembership>, Vec<FtrackUserSecurityRole>), FtrackError> {
    const MEMBERSHIPS: &str = "select id, user_id, group_id from Membership";
    const GRANTS: &str =
        "select id, user_id, security_role_id, is_all_open_projects from UserSecurityRole";
    const SCOPES: &str =
        "select id, user_security_role_id, project_id from UserSecurityRoleProject";
    let (memberships, mut grants, scopes) = match user_ids {
        None => tokio::try_join!(
            rows::<FtrackMembership>(session, format!("{MEMBERSHIPS} order by id")),
            rows::<FtrackUserSecurityRole>(session, format!("{GRANTS} order by id")),
            rows::<RoleProjectRow>(session, format!("{SCOPES} order by id")),
        )?,
        Some(ids) => {
            let (mut memberships, mut grants, mut scopes) = (Vec::new(), Vec::new(), Vec::new());
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let users = in_list(chunk);
                let (m, g) = tokio::try_join!(
                    rows::<FtrackMembership>(
                        session,
                        format!("{MEMBERSHIPS} where user_id in ({users}) order by id")
                    ),
                    rows::<FtrackUserSecurityRole>(
                        session,
                        format!("{GRANTS} where user_id in ({users}) order by id")
                    ),
                )?;
                let grant_ids: Vec<String> = g.iter().map(|g| g.id.to_string()).collect();
                for grant_chunk in grant_ids.chunks(IDS_PER_QUERY) {
                    let list = in_list(grant_chunk);
                    scopes.extend(
                        rows::<RoleProjectRow>(
                            session,
                            format!("{SCOPES} where user_security_role_id in ({list}) order by id"),
                        )
                        .await?,
                    );
                }
                memberships.extend(m);
                grants.extend(g);
            }
            (memberships, grants, scopes)
        }
    };
    let grant_index: std::collections::HashMap<RowId, usize> = grants
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();
    for scope in scopes {
        if let Some(&i) = grant_index.get(&scope.user_security_role_id) {
            grants[i].project_ids.push(scope.project_id);
        }
    }
    for grant in &mut grants {
        grant.project_ids.sort();
    }
    Ok((memberships, grants))
}

impl FtrackSnapshot {
    /// Makes every membership and grant hold its user's, group's and role's id as one shared
    /// string each.
    fn share_link_ids(&mut self) {
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
        for g in &mut self.user_security_roles {
            intern(&mut g.user_id);
            intern(&mut g.security_role_id);
        }
    }
}

async fn rows<T: serde::de::DeserializeOwned>(
    session: &Session,
    expression: impl AsRef<str>,
) -> Result<Vec<T>, FtrackError> {
    session.query_all_as(expression.as_ref()).await
}
