//! In-memory tables with the indexes the emulator needs to stay fast at 100k+ rows
//! (primary key, foreign keys, unique constraints) and an undo log so a failed batch
//! can be rolled back exactly.
//!
//! Rows keep their insertion sequence number, which gives queries without `order by`
//! a stable order for paging.

use crate::schema::{schema, EntityDef};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;

// FxHash (rustc-hash) for the in-memory indexes: keys are ids and usernames from trusted
// test/demo clients, so hash-flooding resistance is not needed, and SipHash dominated
// state-load time at 1M rows.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// One stored entity: a slot per stored column of its type (see
/// [`crate::schema::Attr::is_stored`]); `None` means "not set yet" (defaults apply).
/// A compact slot array rather than a map keeps 1M memberships well under 1 GB.
#[derive(Debug, Clone)]
pub struct Record {
    def: &'static EntityDef,
    vals: Box<[Option<Value>]>,
}

impl Record {
    /// An empty record of type `def`.
    pub fn new(def: &'static EntityDef) -> Record {
        Record {
            def,
            vals: vec![None; def.stored().count()].into_boxed_slice(),
        }
    }

    /// A record from a JSON object; keys that are not stored columns are ignored.
    pub fn from_map(def: &'static EntityDef, map: &Map<String, Value>) -> Record {
        let mut r = Record::new(def);
        for (k, v) in map {
            r.insert(k, v.clone());
        }
        r
    }

    fn slot(&self, col: &str) -> Option<usize> {
        // Column names usually are the schema's own &'static str: compare pointers first.
        self.def
            .stored()
            .position(|a| std::ptr::eq(a.name, col))
            .or_else(|| self.def.stored().position(|a| a.name == col))
    }

    /// The value of a stored column, if set.
    pub fn get(&self, col: &str) -> Option<&Value> {
        self.vals.get(self.slot(col)?)?.as_ref()
    }

    /// Whether a stored column is set.
    pub fn contains_key(&self, col: &str) -> bool {
        self.get(col).is_some()
    }

    /// Set a stored column; returns false (and does nothing) for an unknown column.
    pub fn insert(&mut self, col: impl AsRef<str>, v: Value) -> bool {
        match self.slot(col.as_ref()) {
            Some(i) => {
                self.vals[i] = Some(v);
                true
            }
            None => false,
        }
    }

    /// The record's entity type.
    pub fn def(&self) -> &'static EntityDef {
        self.def
    }
}

/// Separator for composite index keys (cannot appear in normal text).
const SEP: char = '\u{1f}';

/// The index form of a column value: strings as-is, everything else as JSON text.
pub fn key_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "\u{0}null".to_string(),
        other => other.to_string(),
    }
}

/// The primary-key index string of a record.
pub fn pk_of(def: &EntityDef, rec: &Record) -> String {
    join_cols(def.primary_key, rec)
}

/// The primary-key index string from `entity_key` style strings.
pub fn pk_from_parts(parts: &[String]) -> String {
    let sep = SEP.to_string();
    parts.join(&sep)
}

fn join_cols(cols: &[&str], rec: &Record) -> String {
    let mut out = String::new();
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(&key_str(rec.get(c).unwrap_or(&Value::Null)));
    }
    out
}

/// One entity type's rows and indexes.
#[derive(Debug)]
pub struct Table {
    pub def: &'static EntityDef,
    /// Rows by sequence number (insertion order); `None` where a row was removed.
    rows: Vec<Option<Record>>,
    live: usize,
    by_key: HashMap<String, u64>,
    fk: HashMap<&'static str, HashMap<String, BTreeSet<u64>>>,
    /// Per unique constraint; `None` for composite constraints whose first column has a
    /// foreign-key index (checked through that index instead).
    unique: Vec<Option<HashMap<String, u64>>>,
}

impl Table {
    fn new(def: &'static EntityDef) -> Table {
        Table {
            def,
            rows: Vec::new(),
            live: 0,
            by_key: HashMap::default(),
            fk: def
                .fk_columns()
                .map(|a| (a.name, HashMap::default()))
                .collect(),
            unique: def
                .unique
                .iter()
                .map(|cols| {
                    let fk_backed =
                        cols.len() > 1 && def.fk_columns().any(|a| Some(&a.name) == cols.first());
                    (!fk_backed).then(HashMap::default)
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Rows in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i as u64, r)))
    }

    pub fn get(&self, seq: u64) -> Option<&Record> {
        self.rows.get(usize::try_from(seq).ok()?)?.as_ref()
    }

    pub fn seq_by_key(&self, key: &str) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    pub fn by_key(&self, key: &str) -> Option<&Record> {
        self.seq_by_key(key).and_then(|s| self.get(s))
    }

    /// Whether `col` has a foreign-key index.
    pub fn has_fk_index(&self, col: &str) -> bool {
        self.fk.contains_key(col)
    }

    /// Rows whose foreign-key column `col` equals `value` (None if `col` is not indexed).
    pub fn by_fk(&self, col: &str, value: &str) -> Option<Vec<u64>> {
        let idx = self.fk.get(col)?;
        Some(
            idx.get(value)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        )
    }

    /// The index of the single-column unique constraint on `col`, if any.
    pub fn single_unique(&self, col: &str) -> Option<usize> {
        self.def
            .unique
            .iter()
            .position(|cols| cols.len() == 1 && cols[0] == col)
    }

    pub fn by_unique(&self, constraint: usize, key: &str) -> Option<u64> {
        self.unique.get(constraint)?.as_ref()?.get(key).copied()
    }

    /// A message describing the first constraint `rec` would violate, ignoring `exclude`.
    pub fn conflict(&self, rec: &Record, exclude: Option<u64>) -> Option<String> {
        let dup = |cols: &[&str]| {
            Some(format!(
                "Duplicate entry: a {} with {} already exists.",
                self.def.name,
                describe(cols, rec)
            ))
        };
        let clash = |seq: Option<u64>| seq.is_some_and(|s| Some(s) != exclude);
        if clash(
            self.by_key
                .get(cols_key(self.def.primary_key, rec).as_ref())
                .copied(),
        ) {
            return dup(self.def.primary_key);
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            let hit = match &self.unique[i] {
                Some(idx) => clash(idx.get(cols_key(cols, rec).as_ref()).copied()),
                None => self.fk_backed_clash(cols, rec, exclude),
            };
            if hit {
                return dup(cols);
            }
        }
        None
    }

    /// Composite uniqueness checked through the foreign-key index of its first column
    /// (a user has few memberships), so no long composite keys need storing.
    fn fk_backed_clash(&self, cols: &[&str], rec: &Record, exclude: Option<u64>) -> bool {
        let Some(first) = cols.first() else {
            return false;
        };
        let Some(v) = rec.get(first).filter(|v| !v.is_null()) else {
            return false;
        };
        let Some(set) = self
            .fk
            .get(first)
            .and_then(|idx| idx.get(str_of(v).as_ref()))
        else {
            return false;
        };
        set.iter().any(|seq| {
            Some(*seq) != exclude
                && self.get(*seq).is_some_and(|other| {
                    cols.iter().all(|c| {
                        other.get(c).unwrap_or(&Value::Null) == rec.get(c).unwrap_or(&Value::Null)
                    })
                })
        })
    }

    fn index(&mut self, seq: u64, rec: &Record) {
        self.by_key
            .insert(cols_key(self.def.primary_key, rec).into_owned(), seq);
        for (col, idx) in self.fk.iter_mut() {
            if let Some(v) = rec.get(col).filter(|v| !v.is_null()) {
                let k = str_of(v);
                match idx.get_mut(k.as_ref()) {
                    Some(set) => {
                        set.insert(seq);
                    }
                    None => {
                        idx.insert(k.into_owned(), BTreeSet::from([seq]));
                    }
                }
            }
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            if let Some(idx) = self.unique[i].as_mut() {
                idx.insert(cols_key(cols, rec).into_owned(), seq);
            }
        }
    }

    fn unindex(&mut self, seq: u64, rec: &Record) {
        self.by_key
            .remove(cols_key(self.def.primary_key, rec).as_ref());
        for (col, idx) in self.fk.iter_mut() {
            if let Some(v) = rec.get(col).filter(|v| !v.is_null()) {
                let k = str_of(v);
                if let Some(set) = idx.get_mut(k.as_ref()) {
                    set.remove(&seq);
                    if set.is_empty() {
                        idx.remove(k.as_ref());
                    }
                }
            }
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            if let Some(idx) = self.unique[i].as_mut() {
                let k = cols_key(cols, rec);
                if idx.get(k.as_ref()) == Some(&seq) {
                    idx.remove(k.as_ref());
                }
            }
        }
    }
}

/// A value's index form, borrowed when it is a string.
fn str_of(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(key_str(other)),
    }
}

/// The index key of `cols` in `rec`, borrowed for a single string column.
fn cols_key<'a>(cols: &[&str], rec: &'a Record) -> Cow<'a, str> {
    match cols {
        [one] => str_of(rec.get(one).unwrap_or(&Value::Null)),
        _ => Cow::Owned(join_cols(cols, rec)),
    }
}

fn describe(cols: &[&str], rec: &Record) -> String {
    cols.iter()
        .map(|c| {
            format!(
                "{c} {}",
                rec.get(c).map(|v| v.to_string()).unwrap_or("null".into())
            )
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

#[derive(Debug)]
enum Undo {
    Remove(&'static str, u64),
    Reinsert(&'static str, u64, Record),
    Replace(&'static str, u64, Record),
}

/// All tables plus the transaction log.
#[derive(Debug)]
pub struct Store {
    tables: HashMap<&'static str, Table>,
    /// Bumped on every change; query caches compare it.
    pub generation: u64,
    undo: Option<Vec<Undo>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            tables: schema()
                .entities
                .iter()
                .map(|d| (d.name, Table::new(d)))
                .collect(),
            generation: 0,
            undo: None,
        }
    }

    /// The table of a known entity type. Callers obtain names from the schema, so an
    /// unknown name is a programming error; it yields an empty placeholder table.
    pub fn table(&self, name: &str) -> &Table {
        static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        match self.tables.get(name) {
            Some(t) => t,
            None => EMPTY.get_or_init(|| Table::new(&schema().entities[0])),
        }
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut Table, String> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| format!("Unknown entity type \"{name}\"."))
    }

    /// Start recording undo information (one batch).
    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Keep the batch's changes.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Undo every change since [`Store::begin`].
    pub fn rollback(&mut self) {
        let Some(log) = self.undo.take() else { return };
        for u in log.into_iter().rev() {
            match u {
                Undo::Remove(t, seq) => {
                    let _ = self.raw_remove(t, seq);
                }
                Undo::Reinsert(t, seq, rec) => self.raw_insert(t, seq, rec),
                Undo::Replace(t, seq, rec) => {
                    let _ = self.raw_remove(t, seq);
                    self.raw_insert(t, seq, rec);
                }
            }
        }
        self.generation += 1;
    }

    fn raw_insert(&mut self, t: &'static str, seq: u64, rec: Record) {
        if let Ok(table) = self.table_mut(t) {
            table.index(seq, &rec);
            let Ok(i) = usize::try_from(seq) else { return };
            if table.rows.len() <= i {
                table.rows.resize_with(i + 1, || None);
            }
            if table.rows[i].replace(rec).is_none() {
                table.live += 1;
            }
        }
    }

    fn raw_remove(&mut self, t: &str, seq: u64) -> Option<Record> {
        let table = self.table_mut(t).ok()?;
        let rec = table.rows.get_mut(usize::try_from(seq).ok()?)?.take()?;
        table.live -= 1;
        table.unindex(seq, &rec);
        Some(rec)
    }

    fn log(&mut self, u: Undo) {
        if let Some(log) = self.undo.as_mut() {
            log.push(u);
        }
    }

    /// Insert a complete record, enforcing primary-key and unique constraints.
    pub fn insert(&mut self, t: &'static str, rec: Record) -> Result<u64, String> {
        let table = self.table_mut(t)?;
        if let Some(msg) = table.conflict(&rec, None) {
            return Err(msg);
        }
        let seq = table.rows.len() as u64;
        self.raw_insert(t, seq, rec);
        self.log(Undo::Remove(t, seq));
        self.generation += 1;
        Ok(seq)
    }

    /// Remove a row.
    pub fn remove(&mut self, t: &'static str, seq: u64) -> Option<Record> {
        let rec = self.raw_remove(t, seq)?;
        self.log(Undo::Reinsert(t, seq, rec.clone()));
        self.generation += 1;
        Some(rec)
    }

    /// Replace a row's record, enforcing constraints against other rows.
    pub fn replace(&mut self, t: &'static str, seq: u64, rec: Record) -> Result<(), String> {
        let table = self.table_mut(t)?;
        if let Some(msg) = table.conflict(&rec, Some(seq)) {
            return Err(msg);
        }
        let old = self
            .raw_remove(t, seq)
            .ok_or_else(|| format!("{t} row vanished during update"))?;
        self.raw_insert(t, seq, rec);
        self.log(Undo::Replace(t, seq, old));
        self.generation += 1;
        Ok(())
    }

    /// Make room for `n` more rows of type `t` in the indexes (bulk loads).
    pub fn reserve(&mut self, t: &str, n: usize) {
        if let Ok(table) = self.table_mut(t) {
            table.by_key.reserve(n);
            for u in table.unique.iter_mut().flatten() {
                u.reserve(n);
            }
        }
    }

    /// Drop every row of every table.
    pub fn clear(&mut self) {
        *self = Store::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str, name: &str) -> Record {
        let v = json!({"id": id, "username": name, "is_active": true});
        Record::from_map(
            crate::schema::entity("User").unwrap(),
            v.as_object().unwrap(),
        )
    }

    #[test]
    fn unique_username_and_rollback() {
        let mut st = Store::new();
        st.insert("User", user("a", "alice")).unwrap();
        st.begin();
        st.insert("User", user("b", "bob")).unwrap();
        let err = st.insert("User", user("c", "alice")).unwrap_err();
        assert!(err.contains("username"), "{err}");
        st.rollback();
        assert_eq!(st.table("User").len(), 1);
        assert!(st.table("User").by_key("b").is_none());
        let u = st.table("User");
        let c = u.single_unique("username").unwrap();
        assert!(u.by_unique(c, "alice").is_some());
        assert!(u.by_unique(c, "bob").is_none());
    }

    #[test]
    fn replace_and_remove_are_undone() {
        let mut st = Store::new();
        let seq = st.insert("User", user("a", "alice")).unwrap();
        st.begin();
        st.replace("User", seq, user("a", "alicia")).unwrap();
        st.remove("User", seq).unwrap();
        st.rollback();
        let u = st.table("User");
        assert_eq!(
            u.by_key("a").unwrap().get("username"),
            Some(&json!("alice"))
        );
        let c = u.single_unique("username").unwrap();
        assert_eq!(u.by_unique(c, "alice"), Some(seq));
        assert_eq!(u.by_unique(c, "alicia"), None);
    }

    #[test]
    fn fk_index_tracks_changes() {
        let mut st = Store::new();
        let m = json!({"id": "m1", "user_id": "u1", "group_id": "g1"});
        let seq = st
            .insert(
                "Membership",
                Record::from_map(
                    crate::schema::entity("Membership").unwrap(),
                    m.as_object().unwrap(),
                ),
            )
            .unwrap();
        assert_eq!(
            st.table("Membership").by_fk("user_id", "u1"),
            Some(vec![seq])
        );
        st.remove("Membership", seq);
        assert_eq!(st.table("Membership").by_fk("user_id", "u1"), Some(vec![]));
    }

    fn membership(id: &str, u: &str, g: &str) -> Record {
        let m = json!({"id": id, "user_id": u, "group_id": g});
        Record::from_map(
            crate::schema::entity("Membership").unwrap(),
            m.as_object().unwrap(),
        )
    }

    #[test]
    fn composite_uniqueness_through_the_fk_index() {
        let mut st = Store::new();
        st.insert("Membership", membership("m1", "u1", "g1"))
            .unwrap();
        st.insert("Membership", membership("m2", "u1", "g2"))
            .unwrap();
        let err = st
            .insert("Membership", membership("m3", "u1", "g1"))
            .unwrap_err();
        assert!(err.contains("user_id") && err.contains("group_id"), "{err}");
        // Re-pointing m2 at g1 clashes with m1; re-saving m2 unchanged does not.
        let m2 = st.table("Membership").seq_by_key("m2").unwrap();
        assert!(st
            .replace("Membership", m2, membership("m2", "u1", "g1"))
            .is_err());
        st.replace("Membership", m2, membership("m2", "u1", "g2"))
            .unwrap();
        st.insert("Membership", membership("m4", "u2", "g1"))
            .unwrap();
    }

    #[test]
    fn rollback_keeps_insertion_order_and_counts() {
        let mut st = Store::new();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            st.insert("User", user(&i.to_string(), n)).unwrap();
        }
        st.begin();
        let b = st.table("User").seq_by_key("1").unwrap();
        st.remove("User", b).unwrap();
        st.insert("User", user("9", "z")).unwrap();
        assert_eq!(st.table("User").len(), 3);
        st.rollback();
        let names: Vec<&Value> = st
            .table("User")
            .iter()
            .filter_map(|(_, r)| r.get("username"))
            .collect();
        assert_eq!(names, vec![&json!("a"), &json!("b"), &json!("c")]);
        assert_eq!(st.table("User").len(), 3);
        st.insert("User", user("9", "z")).unwrap();
        assert_eq!(st.table("User").len(), 4);
    }
}
