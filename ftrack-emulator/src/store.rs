//! In-memory tables with the indexes the emulator needs to stay fast at 100k+ rows
//! (primary key, foreign keys, unique constraints) and an undo log so a failed batch
//! can be rolled back exactly.
//!
//! Rows keep their insertion sequence number, which gives queries without `order by`
//! a stable order for paging.

use crate::schema::{schema, EntityDef};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A fast non-cryptographic hasher (FxHash-style) for the in-memory indexes: keys are
/// ids and usernames supplied by trusted test/demo clients, so hash-flooding resistance
/// is not needed, and SipHash dominated state-load time at 1M rows.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

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
    rows: BTreeMap<u64, Record>,
    by_key: HashMap<String, u64>,
    fk: HashMap<&'static str, HashMap<String, BTreeSet<u64>>>,
    unique: Vec<HashMap<String, u64>>,
}

impl Table {
    fn new(def: &'static EntityDef) -> Table {
        Table {
            def,
            rows: BTreeMap::new(),
            by_key: HashMap::default(),
            fk: def
                .fk_columns()
                .map(|a| (a.name, HashMap::default()))
                .collect(),
            unique: def.unique.iter().map(|_| HashMap::default()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.rows.iter().map(|(k, v)| (*k, v))
    }

    pub fn get(&self, seq: u64) -> Option<&Record> {
        self.rows.get(&seq)
    }

    pub fn seq_by_key(&self, key: &str) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    pub fn by_key(&self, key: &str) -> Option<&Record> {
        self.seq_by_key(key).and_then(|s| self.rows.get(&s))
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
        self.unique.get(constraint)?.get(key).copied()
    }

    /// A message describing the first constraint `rec` would violate, ignoring `exclude`.
    pub fn conflict(&self, rec: &Record, exclude: Option<u64>) -> Option<String> {
        let pk = pk_of(self.def, rec);
        if let Some(seq) = self.by_key.get(&pk) {
            if Some(*seq) != exclude {
                return Some(format!(
                    "Duplicate entry: a {} with {} already exists.",
                    self.def.name,
                    describe(self.def.primary_key, rec)
                ));
            }
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            let k = join_cols(cols, rec);
            if let Some(seq) = self.unique[i].get(&k) {
                if Some(*seq) != exclude {
                    return Some(format!(
                        "Duplicate entry: a {} with {} already exists.",
                        self.def.name,
                        describe(cols, rec)
                    ));
                }
            }
        }
        None
    }

    fn index(&mut self, seq: u64, rec: &Record) {
        self.by_key.insert(pk_of(self.def, rec), seq);
        for (col, idx) in self.fk.iter_mut() {
            if let Some(v) = rec.get(col).filter(|v| !v.is_null()) {
                idx.entry(key_str(v)).or_default().insert(seq);
            }
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            self.unique[i].insert(join_cols(cols, rec), seq);
        }
    }

    fn unindex(&mut self, seq: u64, rec: &Record) {
        self.by_key.remove(&pk_of(self.def, rec));
        for (col, idx) in self.fk.iter_mut() {
            if let Some(v) = rec.get(col).filter(|v| !v.is_null()) {
                let k = key_str(v);
                if let Some(set) = idx.get_mut(&k) {
                    set.remove(&seq);
                    if set.is_empty() {
                        idx.remove(&k);
                    }
                }
            }
        }
        for (i, cols) in self.def.unique.iter().enumerate() {
            let k = join_cols(cols, rec);
            if self.unique[i].get(&k) == Some(&seq) {
                self.unique[i].remove(&k);
            }
        }
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
    next_seq: u64,
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
            next_seq: 1,
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
            table.rows.insert(seq, rec);
        }
    }

    fn raw_remove(&mut self, t: &str, seq: u64) -> Option<Record> {
        let table = self.table_mut(t).ok()?;
        let rec = table.rows.remove(&seq)?;
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
        let seq = self.next_seq;
        self.next_seq += 1;
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
            for u in &mut table.unique {
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
}
