//! The directory as of a sync position, kept between runs: the cookies a server gave for
//! the user and the group search, and the entries they stand for.
//!
//! An incremental read only says what changed (and, for a delete, only a stable id:
//! entryUUID, or objectGUID on AD), so the run needs the rest of the directory as it was to
//! know who a deleted entry was, which users a changed group touches, and what the rules see
//! for an untouched user. The state is bound to the server it came from and to a
//! fingerprint of the configuration and rule modules it was taken under: anything else
//! makes it unusable, and the run reads everything.
//!
//! Two files: the state itself (cookies, server, fingerprint: small) and, beside it with
//! `.entries` appended, the entries it stands for (tens of megabytes at 100,000 users). A
//! run in which the server says nothing changed reads only the first, so a quiet directory
//! costs a refresh and a small file. Each is written whole to a new private file and renamed
//! into place, the entries first; the state names the entries by a random id, so a crash
//! between the two renames leaves a pair that does not match, which is read as no state.

use super::ldap::change_source::{ChangeSource, Refresh};
use super::{Entry, EntrySet};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

/// Bumped when the file's meaning changes; another version is read as no state.
const VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SyncState {
    pub version: u32,
    /// The id of the entries file this state goes with.
    pub entries_id: String,
    /// Users in the directory as of this state.
    pub user_count: usize,
    /// The LDAP URL the cookies belong to.
    pub server: String,
    /// How the server reports changes (what the cookies are).
    #[serde(default)]
    pub source: ChangeSource,
    /// What the configuration and rule modules were when the state was taken.
    pub fingerprint: String,
    /// When the last full read was (seconds since the epoch).
    pub full_at: u64,
    /// The user and the group search's cookies, base64.
    pub user_cookie: String,
    pub group_cookie: String,
    /// The entries, by stable id (entryUUID, or objectGUID on AD): kept in the entries file,
    /// read only when needed ([`SyncState::load_entries`]).
    #[serde(skip)]
    pub users: BTreeMap<String, Entry>,
    #[serde(skip)]
    pub groups: BTreeMap<String, Entry>,
    /// Whether `users` and `groups` hold the entries (read, or taken from a full read), and
    /// whether they changed since they were written.
    #[serde(skip)]
    entries: Held,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Held {
    #[default]
    NotRead,
    Read,
    Changed,
}

/// The entries file's contents, as written.
#[derive(Serialize)]
struct EntriesFile<'a> {
    id: String,
    users: &'a BTreeMap<String, Entry>,
    groups: &'a BTreeMap<String, Entry>,
}

/// The entries file's contents, as read.
#[derive(Deserialize)]
struct EntriesRead {
    id: String,
    users: BTreeMap<String, Entry>,
    groups: BTreeMap<String, Entry>,
}

/// The state file as written: [`SyncState`] without its entries.
#[derive(Serialize)]
struct Header<'a> {
    version: u32,
    entries_id: &'a str,
    user_count: usize,
    server: &'a str,
    source: ChangeSource,
    fingerprint: &'a str,
    full_at: u64,
    user_cookie: &'a str,
    group_cookie: &'a str,
}

/// The entries file that goes with the state file at `path`.
pub fn entries_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".entries");
    std::path::PathBuf::from(name)
}

/// Why a stored state was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    Missing,
    Unreadable(String),
    Other(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => f.write_str("there is no sync state yet"),
            Unusable::Unreadable(why) => write!(f, "the sync state cannot be read ({why})"),
            Unusable::Other(why) => f.write_str(why),
        }
    }
}

/// What a refresh changed, by stable id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

impl SyncState {
    /// A state from a complete read (refreshes from no cookie).
    pub fn from_full(
        server: &str,
        source: ChangeSource,
        fingerprint: &str,
        now: u64,
        [users, groups]: [Refresh; 2],
    ) -> SyncState {
        let b64 = base64::engine::general_purpose::STANDARD;
        let user_cookie = b64.encode(&users.cookie);
        let users: BTreeMap<String, Entry> = users.changed.into_iter().collect();
        SyncState {
            version: VERSION,
            entries_id: String::new(),
            user_count: users.len(),
            server: server.to_string(),
            source,
            fingerprint: fingerprint.to_string(),
            full_at: now,
            user_cookie,
            group_cookie: b64.encode(&groups.cookie),
            users,
            groups: groups.changed.into_iter().collect(),
            entries: Held::Changed,
        }
    }

    /// Reads the state at `path`, if there is one and it fits this server and fingerprint.
    pub fn load(path: &Path, server: &str, fingerprint: &str) -> Result<SyncState, Unusable> {
        let file = match crate::private_files::open_read(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Unreadable(format!("{}: {e}", path.display()))),
        };
        let state: SyncState = serde_json::from_reader(BufReader::new(file))
            .map_err(|e| Unusable::Unreadable(format!("{}: {e}", path.display())))?;
        if state.version != VERSION {
            return Err(Unusable::Other(format!(
                "the sync state in {} is of another version ({})",
                path.display(),
                state.version
            )));
        }
        if state.server != server {
            return Err(Unusable::Other(format!(
                "the sync state belongs to {}, not {server}",
                state.server
            )));
        }
        if state.fingerprint != fingerprint {
            return Err(Unusable::Other(
                "the configuration or a rule module changed since the sync state was taken".into(),
            ));
        }
        Ok(state)
    }

    /// Reads the entries file that goes with this state (once).
    pub fn load_entries(&mut self, path: &Path) -> Result<(), Unusable> {
        if self.entries != Held::NotRead {
            return Ok(());
        }
        let path = entries_path(path);
        let file = crate::private_files::open_read(&path)
            .map_err(|e| Unusable::Unreadable(format!("{}: {e}", path.display())))?;
        // Read whole, then parsed from the slice: serde_json parses a slice several times
        // faster than a reader, and this file is tens of megabytes.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut BufReader::new(file), &mut bytes)
            .map_err(|e| Unusable::Unreadable(format!("{}: {e}", path.display())))?;
        let file: EntriesRead = serde_json::from_slice(&bytes)
            .map_err(|e| Unusable::Unreadable(format!("{}: {e}", path.display())))?;
        drop(bytes);
        if file.id != self.entries_id {
            return Err(Unusable::Unreadable(format!(
                "{} does not go with the sync state beside it",
                path.display()
            )));
        }
        self.users = file.users;
        self.groups = file.groups;
        self.entries = Held::Read;
        Ok(())
    }

    /// Writes the state to new private files beside `path` and renames them into place:
    /// the entries first (when they changed), then the state naming them.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let (entries_id, user_count) = match self.entries {
            Held::Changed => {
                let id = new_id();
                let file = EntriesFile {
                    id: id.clone(),
                    users: &self.users,
                    groups: &self.groups,
                };
                write_whole(&entries_path(path), &file)?;
                (id, self.users.len())
            }
            Held::Read => (self.entries_id.clone(), self.users.len()),
            Held::NotRead => (self.entries_id.clone(), self.user_count),
        };
        let header = Header {
            version: self.version,
            entries_id: &entries_id,
            user_count,
            server: &self.server,
            source: self.source,
            fingerprint: &self.fingerprint,
            full_at: self.full_at,
            user_cookie: &self.user_cookie,
            group_cookie: &self.group_cookie,
        };
        write_whole(path, &header)
    }

    /// The cookies to refresh from.
    pub fn cookies(&self) -> Result<[Vec<u8>; 2], Unusable> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |c: &str| {
            b64.decode(c)
                .map_err(|e| Unusable::Unreadable(format!("a stored cookie is not base64: {e}")))
        };
        Ok([decode(&self.user_cookie)?, decode(&self.group_cookie)?])
    }

    /// The entries as an [`EntrySet`] (a copy: the state stays as it is).
    pub fn entries(&self) -> EntrySet {
        EntrySet {
            users: self.users.values().cloned().collect(),
            groups: self.groups.values().cloned().collect(),
            stats: Default::default(),
        }
    }

    /// Keeps the cookies of two refreshes that changed nothing (see [`says_nothing`]),
    /// without reading the entries.
    pub fn advance(&mut self, refreshes: &[Refresh; 2]) {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.user_cookie = b64.encode(&refreshes[0].cookie);
        self.group_cookie = b64.encode(&refreshes[1].cookie);
    }

    /// Brings the entries forward by what the two refreshes said, and keeps their cookies.
    /// The entries must have been read ([`SyncState::load_entries`]).
    pub fn apply(&mut self, refreshes: [Refresh; 2]) -> Changed {
        self.advance(&refreshes);
        let [users, groups] = refreshes;
        // AD shows a group's members by their current DN without touching the group when a
        // member is renamed or deleted (see `ldap::usn`): the stored groups follow.
        let (moved, sent_groups) = match self.source {
            ChangeSource::Usn => {
                let mut moved = moves(&self.users, &users);
                moved.extend(moves(&self.groups, &groups));
                let sent: BTreeSet<String> =
                    groups.changed.iter().map(|(id, _)| id.clone()).collect();
                (moved, sent)
            }
            ChangeSource::Syncrepl => Default::default(),
        };
        let changed = Changed {
            users: apply_refresh(&mut self.users, users),
            groups: apply_refresh(&mut self.groups, groups),
        };
        follow_moves(&mut self.groups, &sent_groups, &moved);
        if !changed.is_empty() {
            self.entries = Held::Changed;
        }
        changed
    }
}

/// True when the refreshes name no entry at all: nothing was sent, deleted, or listed
/// present (a present phase must be compared with the entries to know what went), so the
/// stored entries need not be read.
pub fn says_nothing(refreshes: &[Refresh; 2]) -> bool {
    refreshes.iter().all(|r| {
        r.changed.is_empty() && r.deleted.is_empty() && r.present.is_empty() && !r.present_phase
    })
}

/// The DNs a refresh moves (renamed, `Some(new)`) or removes (deleted, `None`), by their
/// lower-cased old DN.
fn moves(entries: &BTreeMap<String, Entry>, refresh: &Refresh) -> BTreeMap<String, Option<String>> {
    let mut moved = BTreeMap::new();
    for (id, entry) in &refresh.changed {
        if let Some(old) = entries.get(id) {
            if !old.dn.eq_ignore_ascii_case(&entry.dn) {
                moved.insert(old.dn.to_lowercase(), Some(entry.dn.clone()));
            }
        }
    }
    for id in &refresh.deleted {
        if let Some(old) = entries.get(id) {
            moved.insert(old.dn.to_lowercase(), None);
        }
    }
    moved
}

/// Rewrites the `member` values of the groups the server did not send (it sent the others
/// as they are now) for moved and removed DNs.
fn follow_moves(
    groups: &mut BTreeMap<String, Entry>,
    sent: &BTreeSet<String>,
    moved: &BTreeMap<String, Option<String>>,
) {
    if moved.is_empty() {
        return;
    }
    for (_, group) in groups.iter_mut().filter(|(id, _)| !sent.contains(*id)) {
        for attribute in group
            .attributes
            .iter_mut()
            .filter(|a| a.name.eq_ignore_ascii_case("member"))
        {
            attribute.values.retain_mut(|value| {
                let Some(dn) = value.as_text() else {
                    return true;
                };
                match moved.get(&dn.to_lowercase()) {
                    None => true,
                    Some(None) => false,
                    Some(Some(new)) => {
                        *value = super::Value::Text(new.clone());
                        true
                    }
                }
            });
        }
    }
}

/// A fresh id for an entries file.
fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hash, now.to_le_bytes());
    sha2::Digest::update(&mut hash, std::process::id().to_le_bytes());
    hex::encode(&sha2::Digest::finalize(hash)[..16])
}

/// Writes `value` as JSON to a new private file beside `path`, made durable, then renamed
/// over `path`.
fn write_whole(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail =
        |e: &dyn std::fmt::Display| format!("cannot write the sync state {}: {e}", path.display());
    let file = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer(&mut out, value).map_err(|e| fail(&e))?;
    out.flush().map_err(|e| fail(&e))?;
    let file = out.into_inner().map_err(|e| fail(&e.error()))?;
    file.as_file().sync_data().map_err(|e| fail(&e))?;
    file.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// Applies one search's refresh to its entries; returns the ids that changed
/// (added, modified, renamed or gone).
fn apply_refresh(entries: &mut BTreeMap<String, Entry>, refresh: Refresh) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    let mut mentioned: BTreeSet<String> = BTreeSet::new();
    if refresh.present_phase {
        mentioned.extend(refresh.present.iter().cloned());
        mentioned.extend(refresh.changed.iter().map(|(uuid, _)| uuid.clone()));
    }
    for (uuid, entry) in refresh.changed {
        if entries.get(&uuid) != Some(&entry) {
            changed.insert(uuid.clone());
        }
        entries.insert(uuid, entry);
    }
    for uuid in refresh.deleted {
        // A delete for an entry never held (slapd names entries that stopped matching
        // another search) changes nothing.
        if entries.remove(&uuid).is_some() {
            changed.insert(uuid);
        }
    }
    if refresh.present_phase {
        entries.retain(|uuid, _| {
            let keep = mentioned.contains(uuid);
            if !keep {
                changed.insert(uuid.clone());
            }
            keep
        });
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Value;

    fn entry(dn: &str, mail: &str) -> Entry {
        let mut e = Entry::new(dn);
        e.push("mail", Value::Text(mail.into()));
        e
    }

    fn state(users: &[(&str, Entry)]) -> SyncState {
        SyncState {
            version: VERSION,
            entries_id: String::new(),
            user_count: users.len(),
            entries: Held::Read,
            server: "ldap://x".into(),
            source: ChangeSource::Syncrepl,
            fingerprint: "f".into(),
            full_at: 0,
            user_cookie: String::new(),
            group_cookie: String::new(),
            users: users
                .iter()
                .map(|(u, e)| (u.to_string(), e.clone()))
                .collect(),
            groups: BTreeMap::new(),
        }
    }

    fn refresh(changed: Vec<(&str, Entry)>, deleted: &[&str], present: Option<&[&str]>) -> Refresh {
        Refresh {
            changed: changed
                .into_iter()
                .map(|(u, e)| (u.to_string(), e))
                .collect(),
            deleted: deleted.iter().map(|u| u.to_string()).collect(),
            present: present
                .unwrap_or(&[])
                .iter()
                .map(|u| u.to_string())
                .collect(),
            present_phase: present.is_some(),
            cookie: b"c2".to_vec(),
            stats: Default::default(),
        }
    }

    #[test]
    fn a_delete_phase_changes_only_what_it_names() {
        let mut s = state(&[("a", entry("uid=a", "a@x")), ("b", entry("uid=b", "b@x"))]);
        let changed = s.apply([
            refresh(
                vec![("a", entry("uid=a", "new@x")), ("c", entry("uid=c", "c@x"))],
                &["b", "zz"],
                None,
            ),
            refresh(vec![], &[], None),
        ]);
        assert_eq!(changed.users, ["a", "b", "c"].map(String::from).into());
        assert_eq!(s.users.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(s.cookies().unwrap()[0], b"c2");
    }

    #[test]
    fn a_present_phase_removes_what_it_does_not_mention() {
        let mut s = state(&[
            ("a", entry("uid=a", "a@x")),
            ("b", entry("uid=b", "b@x")),
            ("c", entry("uid=c", "c@x")),
        ]);
        // a unchanged (named present), b sent again unchanged, c not mentioned: gone.
        let changed = s.apply([
            refresh(vec![("b", entry("uid=b", "b@x"))], &[], Some(&["a"])),
            refresh(vec![], &[], None),
        ]);
        assert_eq!(changed.users, ["c"].map(String::from).into());
        assert_eq!(s.users.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn on_active_directory_the_groups_follow_a_renamed_or_deleted_member() {
        let group = |members: &[&str]| {
            let mut g = entry("CN=artists", "g@x");
            for m in members {
                g.push("member", Value::Text(m.to_string()));
            }
            g
        };
        for (source, follows) in [(ChangeSource::Usn, true), (ChangeSource::Syncrepl, false)] {
            let mut s = state(&[
                ("a", entry("CN=Ann,OU=P", "a@x")),
                ("b", entry("CN=Bob,OU=P", "b@x")),
            ]);
            s.source = source;
            s.groups.insert(
                "g".into(),
                group(&["CN=Ann,OU=P", "cn=bob,ou=p", "CN=Cy,OU=P"]),
            );
            s.groups.insert("h".into(), group(&["CN=Ann,OU=P"]));
            s.apply([
                refresh(vec![("a", entry("CN=Anna,OU=P", "a@x"))], &["b"], None),
                // h was sent as it is now: left as sent.
                refresh(vec![("h", group(&["CN=Ann,OU=P"]))], &[], None),
            ]);
            let members = |id: &str| {
                s.groups[id]
                    .texts("member")
                    .map(String::from)
                    .collect::<Vec<_>>()
            };
            if follows {
                assert_eq!(members("g"), ["CN=Anna,OU=P", "CN=Cy,OU=P"]);
            } else {
                assert_eq!(members("g"), ["CN=Ann,OU=P", "cn=bob,ou=p", "CN=Cy,OU=P"]);
            }
            assert_eq!(members("h"), ["CN=Ann,OU=P"]);
        }
    }

    #[test]
    fn saved_and_loaded_only_for_the_same_server_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(
            SyncState::load(&path, "ldap://x", "f"),
            Err(Unusable::Missing)
        );
        let mut e = entry("uid=a", "a@x");
        e.push("objectGUID", Value::Binary(vec![0, 255, 7]));
        let s = state(&[("a", e)]);
        let mut s = s;
        s.entries = Held::Changed;
        s.save(&path).unwrap();
        let mut loaded = SyncState::load(&path, "ldap://x", "f").unwrap();
        assert!(
            loaded.users.is_empty(),
            "the entries are read only when asked for"
        );
        assert_eq!(loaded.user_count, 1);
        loaded.load_entries(&path).unwrap();
        assert_eq!(loaded.users, s.users);
        // An entries file that does not go with the state is no state.
        let other = entries_path(&path);
        let text = std::fs::read_to_string(&other).unwrap();
        std::fs::write(&other, text.replacen("\"id\":\"", "\"id\":\"0", 1)).unwrap();
        let mut loaded = SyncState::load(&path, "ldap://x", "f").unwrap();
        assert!(matches!(
            loaded.load_entries(&path),
            Err(Unusable::Unreadable(_))
        ));
        s.save(&path).unwrap();
        assert!(matches!(
            SyncState::load(&path, "ldap://y", "f"),
            Err(Unusable::Other(_))
        ));
        assert!(matches!(
            SyncState::load(&path, "ldap://x", "g"),
            Err(Unusable::Other(_))
        ));
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            SyncState::load(&path, "ldap://x", "f"),
            Err(Unusable::Unreadable(_))
        ));
        #[cfg(unix)]
        {
            s.save(&path).unwrap();
            use std::os::unix::fs::PermissionsExt;
            for file in [path.clone(), entries_path(&path)] {
                let mode = std::fs::metadata(&file).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "the state holds personal data: 0600");
            }
        }
    }
}
