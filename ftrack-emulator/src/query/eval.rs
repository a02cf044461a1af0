//! Executes a parsed query against the store: validates paths against the schema,
//! resolves subqueries, picks an index for the candidate set when the filter allows it,
//! sorts once and caches the ordered match list so paging with offset/limit stays
//! linear, then renders the requested projections in the wire entity format.

use super::parser::{parse, Cond, Op, Query, Val};
use crate::error::ApiError;
use crate::schema::{entity, EntityDef, Kind, METADATA};
use crate::store::{key_str, pk_of, Record, Store, Table};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// One page of a query.
#[derive(Debug)]
pub struct QueryPage {
    pub entity: &'static str,
    /// How many rows `data` holds.
    pub rows: usize,
    /// The rows, already in wire JSON (a JSON array).
    pub data: Box<RawValue>,
    pub next_offset: Option<u64>,
}

/// Ordered match lists of recent queries, valid while the store generation is unchanged.
#[derive(Debug, Default)]
pub struct QueryCache {
    entries: VecDeque<(String, u64, Arc<Vec<u64>>)>,
}

const CACHE_SIZE: usize = 16;

impl QueryCache {
    fn get(&self, key: &str, generation: u64) -> Option<Arc<Vec<u64>>> {
        self.entries
            .iter()
            .find(|(k, g, _)| k == key && *g == generation)
            .map(|(_, _, v)| v.clone())
    }
    fn put(&mut self, key: String, generation: u64, v: Arc<Vec<u64>>) {
        self.entries.retain(|(_, g, _)| *g == generation);
        if self.entries.len() >= CACHE_SIZE {
            self.entries.pop_front();
        }
        self.entries.push_back((key, generation, v));
    }
}

/// Parse and run `expr`.
pub fn execute(store: &Store, cache: &mut QueryCache, expr: &str) -> Result<QueryPage, ApiError> {
    let q = parse(expr)
        .map_err(|e| ApiError::parse(format!("Could not parse query {expr:?}: {e}.")))?;
    run(store, Some(cache), &q)
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Col(&'static str),
    Ref(&'static EntityDef, &'static str),
    Coll(&'static EntityDef, &'static str),
    Meta(&'static EntityDef),
}

#[derive(Debug)]
enum CCond {
    And(Vec<CCond>),
    Or(Vec<CCond>),
    Not(Box<CCond>),
    Cmp(Vec<Step>, Op, CVal),
    Related(Vec<Step>, Option<Box<CCond>>),
}

#[derive(Debug, Clone)]
enum CVal {
    Null,
    Bool(bool),
    Num(f64, String),
    Str(String),
    List(Vec<CVal>),
}

/// Resolve `path` from `def`; `relation_end` demands the path end on a relation.
fn compile_path(
    def: &'static EntityDef,
    path: &[String],
    relation_end: bool,
) -> Result<(Vec<Step>, &'static EntityDef), ApiError> {
    let mut cur = def;
    let mut steps = Vec::new();
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let attr = cur.attr(seg).ok_or_else(|| {
            ApiError::validation(format!(
                "{} has no attribute \"{seg}\" (in \"{}\"); known attributes: {}.",
                cur.name,
                path.join("."),
                cur.attrs
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let (step, next) = match attr.kind {
            Kind::Str | Kind::Bool => {
                if !last || relation_end {
                    return Err(ApiError::validation(format!(
                        "{}.{seg} is not a relation, so \"{}\" cannot go through it.",
                        cur.name,
                        path.join(".")
                    )));
                }
                (Step::Col(cur_column(cur, seg)), cur)
            }
            Kind::Ref { target, fk } => {
                let t = entity(target).map_err(ApiError::server)?;
                (Step::Ref(t, fk), t)
            }
            Kind::Coll { target, fk } => {
                let t = entity(target).map_err(ApiError::server)?;
                (Step::Coll(t, fk), t)
            }
            Kind::Meta => {
                let t = entity(METADATA).map_err(ApiError::server)?;
                (Step::Meta(t), t)
            }
        };
        steps.push(step);
        cur = next;
    }
    Ok((steps, cur))
}

fn cur_column(def: &'static EntityDef, name: &str) -> &'static str {
    let a = def.attrs.iter().find(|a| a.name == name);
    match a {
        Some(a) => a.alias_of.unwrap_or(a.name),
        None => "",
    }
}

fn compile_cond(store: &Store, def: &'static EntityDef, c: &Cond) -> Result<CCond, ApiError> {
    Ok(match c {
        Cond::And(v) => CCond::And(
            v.iter()
                .map(|c| compile_cond(store, def, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(v) => CCond::Or(
            v.iter()
                .map(|c| compile_cond(store, def, c))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Not(c) => CCond::Not(Box::new(compile_cond(store, def, c)?)),
        Cond::Cmp { path, op, value } => {
            let (steps, _) = compile_path(def, path, false)?;
            CCond::Cmp(steps, *op, compile_val(store, value)?)
        }
        Cond::Related { path, cond } => {
            let (steps, target) = compile_path(def, path, true)?;
            let inner = match cond {
                Some(c) => Some(Box::new(compile_cond(store, target, c)?)),
                None => None,
            };
            CCond::Related(steps, inner)
        }
    })
}

fn compile_val(store: &Store, v: &Val) -> Result<CVal, ApiError> {
    Ok(match v {
        Val::Null => CVal::Null,
        Val::Bool(b) => CVal::Bool(*b),
        Val::Num(n, t) => CVal::Num(*n, t.clone()),
        Val::Str(s) => CVal::Str(s.clone()),
        Val::List(items) => CVal::List(
            items
                .iter()
                .map(|v| compile_val(store, v))
                .collect::<Result<_, _>>()?,
        ),
        Val::Sub(q) => {
            // The subquery's first projection supplies the values.
            let def = entity(&q.entity).map_err(ApiError::validation)?;
            let first = match &q.select {
                Some(paths) if !paths.is_empty() => paths[0].clone(),
                _ => def
                    .primary_key
                    .iter()
                    .take(1)
                    .map(|s| s.to_string())
                    .collect(),
            };
            let (steps, _) = compile_path(def, &first, false)?;
            let seqs = matches(store, None, q, def)?;
            let table = store.table(def.name);
            let mut out = Vec::new();
            let mut vals = Vec::new();
            for seq in page_slice(&seqs, q.offset, q.limit).0 {
                if let Some(rec) = table.get(*seq) {
                    vals.clear();
                    walk(store, rec, &steps, &mut vals);
                    out.extend(vals.iter().map(|v| json_to_cval(v)));
                }
            }
            CVal::List(out)
        }
    })
}

fn json_to_cval(v: &Value) -> CVal {
    match v {
        Value::Null => CVal::Null,
        Value::Bool(b) => CVal::Bool(*b),
        Value::Number(n) => CVal::Num(n.as_f64().unwrap_or(0.0), n.to_string()),
        Value::String(s) => CVal::Str(s.clone()),
        other => CVal::Str(other.to_string()),
    }
}

/// Collect the terminal values of `steps` starting at `rec`.
fn walk<'a>(store: &'a Store, rec: &'a Record, steps: &[Step], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    let last = rest.is_empty();
    match *first {
        Step::Col(c) => {
            if let Some(v) = rec.get(c) {
                out.push(v);
            }
        }
        Step::Ref(t, fk) => {
            let Some(v) = rec.get(fk) else { return };
            if last {
                out.push(v);
                return;
            }
            if v.is_null() {
                return;
            }
            if let Some(target) = store.table(t.name).by_key(&key_str(v)) {
                walk(store, target, rest, out);
            }
        }
        Step::Coll(t, _) | Step::Meta(t) => {
            for child in children(store, rec, *first) {
                if last {
                    if let Some(pk) = child.get(t.primary_key.first().copied().unwrap_or("id")) {
                        out.push(pk);
                    }
                } else {
                    walk(store, child, rest, out);
                }
            }
        }
    }
}

/// Entities reached by following relation-only `steps` from `rec`.
fn walk_entities<'a>(store: &'a Store, rec: &'a Record, steps: &[Step], out: &mut Vec<&'a Record>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(rec);
        return;
    };
    match *first {
        Step::Col(_) => {}
        Step::Ref(t, fk) => {
            if let Some(v) = rec.get(fk).filter(|v| !v.is_null()) {
                if let Some(target) = store.table(t.name).by_key(&key_str(v)) {
                    walk_entities(store, target, rest, out);
                }
            }
        }
        Step::Coll(..) | Step::Meta(_) => {
            for child in children(store, rec, *first) {
                walk_entities(store, child, rest, out);
            }
        }
    }
}

fn children<'a>(store: &'a Store, rec: &'a Record, step: Step) -> Vec<&'a Record> {
    let (t, fk) = match step {
        Step::Coll(t, fk) => (t, fk),
        Step::Meta(t) => (t, "parent_id"),
        _ => return Vec::new(),
    };
    let Some(id) = rec.get("id").filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let table = store.table(t.name);
    table
        .by_fk(fk, &key_str(id))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| table.get(s))
        .collect()
}

fn eval(store: &Store, rec: &Record, c: &CCond) -> bool {
    match c {
        CCond::And(v) => v.iter().all(|c| eval(store, rec, c)),
        CCond::Or(v) => v.iter().any(|c| eval(store, rec, c)),
        CCond::Not(c) => !eval(store, rec, c),
        CCond::Cmp(steps, op, val) => {
            let mut vals = Vec::new();
            walk(store, rec, steps, &mut vals);
            if vals.is_empty() {
                vals.push(&Value::Null);
            }
            match op {
                // Negative operators hold when no value matches the positive one.
                Op::Ne => !vals.iter().any(|v| compare(v, Op::Eq, val)),
                Op::NotIn => !vals.iter().any(|v| compare(v, Op::In, val)),
                Op::NotLike => !vals.iter().any(|v| compare(v, Op::Like, val)),
                _ => vals.iter().any(|v| compare(v, *op, val)),
            }
        }
        CCond::Related(steps, inner) => {
            let mut ents = Vec::new();
            walk_entities(store, rec, steps, &mut ents);
            match inner {
                None => !ents.is_empty(),
                Some(c) => ents.iter().any(|e| eval(store, e, c)),
            }
        }
    }
}

/// Stored value text for loose comparison (datetimes compare by their ISO string).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(m) => m.get("value").and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    }
}

fn eq(v: &Value, q: &CVal) -> bool {
    match q {
        CVal::Null => v.is_null(),
        CVal::Bool(b) => match v {
            Value::Bool(x) => x == b,
            Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        CVal::Num(n, t) => match v {
            Value::Number(x) => x.as_f64() == Some(*n),
            Value::String(s) => s == t || s.parse::<f64>().ok() == Some(*n),
            _ => false,
        },
        CVal::Str(s) => match v {
            Value::Null => false,
            Value::Bool(x) => s.eq_ignore_ascii_case(if *x { "true" } else { "false" }),
            Value::Number(x) => s.parse::<f64>().ok() == x.as_f64(),
            other => text(other).as_deref() == Some(s.as_str()),
        },
        CVal::List(_) => false,
    }
}

fn order(v: &Value, q: &CVal) -> Option<Ordering> {
    match (v, q) {
        (Value::Number(x), CVal::Num(n, _)) => x.as_f64()?.partial_cmp(n),
        (Value::Number(x), CVal::Str(s)) => x.as_f64()?.partial_cmp(&s.parse::<f64>().ok()?),
        (Value::Null, _) | (_, CVal::Null) => None,
        (other, CVal::Str(s)) => Some(text(other)?.as_str().cmp(s.as_str())),
        (other, CVal::Num(n, t)) => {
            let s = text(other)?;
            match s.parse::<f64>() {
                Ok(x) => x.partial_cmp(n),
                Err(_) => Some(s.as_str().cmp(t.as_str())),
            }
        }
        _ => None,
    }
}

/// SQL-style `like`: `%` any run, `_` one character; case-insensitive.
pub fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    // Iterative wildcard matching with backtracking to the last '%': O(len(t)*len(p)).
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn compare(v: &Value, op: Op, q: &CVal) -> bool {
    match op {
        Op::Eq => eq(v, q),
        Op::Ne => !eq(v, q),
        Op::In => match q {
            CVal::List(items) => items.iter().any(|i| eq(v, i)),
            _ => false,
        },
        Op::NotIn => !compare(v, Op::In, q),
        Op::Like => match (text(v), q) {
            (Some(t), CVal::Str(p)) | (Some(t), CVal::Num(_, p)) => like(&t, p),
            _ => false,
        },
        Op::NotLike => !compare(v, Op::Like, q),
        Op::Gt => order(v, q) == Some(Ordering::Greater),
        Op::Lt => order(v, q) == Some(Ordering::Less),
        Op::Ge => matches!(order(v, q), Some(Ordering::Greater | Ordering::Equal)),
        Op::Le => matches!(order(v, q), Some(Ordering::Less | Ordering::Equal)),
    }
}

fn index_key(v: &CVal) -> Option<String> {
    match v {
        CVal::Str(s) => Some(s.clone()),
        CVal::Num(_, t) => Some(t.clone()),
        _ => None,
    }
}

/// Candidate rows from an index, when the filter pins an indexed column.
fn candidates(def: &EntityDef, table: &Table, c: &CCond) -> Option<Vec<u64>> {
    match c {
        CCond::Cmp(steps, op, val) if steps.len() == 1 => {
            let Step::Col(col) = steps[0] else {
                return None;
            };
            let keys: Vec<String> = match (op, val) {
                (Op::Eq, v) => vec![index_key(v)?],
                (Op::In, CVal::List(items)) => {
                    items.iter().map(index_key).collect::<Option<Vec<_>>>()?
                }
                _ => return None,
            };
            let mut out = Vec::new();
            if def.primary_key.len() == 1 && def.primary_key[0] == col {
                out.extend(keys.iter().filter_map(|k| table.seq_by_key(k)));
            } else if let Some(u) = table.single_unique(col) {
                out.extend(keys.iter().filter_map(|k| table.by_unique(u, k)));
            } else if table.has_fk_index(col) {
                for k in &keys {
                    out.extend(table.by_fk(col, k).unwrap_or_default());
                }
            } else {
                return None;
            }
            Some(out)
        }
        CCond::And(parts) => parts.iter().find_map(|p| candidates(def, table, p)),
        CCond::Or(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(candidates(def, table, p)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// Sort key ordering: nulls first, then booleans, numbers, strings.
fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) if rank(a) == 3 && rank(b) == 3 => text(x).cmp(&text(y)),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The ordered list of matching row sequence numbers (cached per store generation).
fn matches(
    store: &Store,
    cache: Option<&mut QueryCache>,
    q: &Query,
    def: &'static EntityDef,
) -> Result<Arc<Vec<u64>>, ApiError> {
    let key = format!("{}|{:?}|{:?}", def.name, q.filter, q.order);
    if let Some(hit) = cache.as_ref().and_then(|c| c.get(&key, store.generation)) {
        return Ok(hit);
    }
    let filter = match &q.filter {
        Some(c) => Some(compile_cond(store, def, c)?),
        None => None,
    };
    let order: Vec<(Vec<Step>, bool)> = q
        .order
        .iter()
        .map(|(p, desc)| compile_path(def, p, false).map(|(s, _)| (s, *desc)))
        .collect::<Result<_, _>>()?;
    let table = store.table(def.name);
    let mut seqs: Vec<u64> = match filter.as_ref().and_then(|f| candidates(def, table, f)) {
        Some(mut c) => {
            c.sort_unstable();
            c.dedup();
            c.into_iter()
                .filter(|s| {
                    table
                        .get(*s)
                        .is_some_and(|r| filter.as_ref().is_none_or(|f| eval(store, r, f)))
                })
                .collect()
        }
        None => table
            .iter()
            .filter(|(_, r)| filter.as_ref().is_none_or(|f| eval(store, r, f)))
            .map(|(s, _)| s)
            .collect(),
    };
    if !order.is_empty() {
        let mut keyed: Vec<(Vec<Option<&Value>>, u64)> = seqs
            .iter()
            .filter_map(|s| table.get(*s).map(|r| (r, *s)))
            .map(|(r, s)| {
                let ks = order
                    .iter()
                    .map(|(steps, _)| {
                        let mut v = Vec::new();
                        walk(store, r, steps, &mut v);
                        v.first().copied()
                    })
                    .collect();
                (ks, s)
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, (_, desc)) in order.iter().enumerate() {
                let o = cmp_values(a[i], b[i]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        seqs = keyed.into_iter().map(|(_, s)| s).collect();
    }
    let seqs = Arc::new(seqs);
    if let Some(c) = cache {
        c.put(key, store.generation, seqs.clone());
    }
    Ok(seqs)
}

fn page_slice(seqs: &[u64], offset: Option<u64>, limit: Option<u64>) -> (&[u64], Option<u64>) {
    let total = seqs.len();
    let start = usize::try_from(offset.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(total);
    let end = match limit {
        Some(l) => start
            .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
            .min(total),
        None => total,
    };
    let next = (end < total && end > start).then_some(end as u64);
    (&seqs[start..end], next)
}

/// Projection tree: attribute name → nested projections.
#[derive(Debug, Default)]
struct Proj(BTreeMap<String, Proj>);

fn build_proj(def: &'static EntityDef, paths: &[Vec<String>]) -> Result<Proj, ApiError> {
    let mut root = Proj::default();
    for p in paths {
        compile_path(def, p, false).or_else(|e| {
            // A path may legitimately end on a relation (e.g. `user` or `memberships`).
            compile_path(def, p, true).map_err(|_| e)
        })?;
        let mut node = &mut root;
        for seg in p {
            node = node.0.entry(seg.clone()).or_default();
        }
    }
    Ok(root)
}

/// A rendered record that borrows the store: a page is written straight to JSON under the
/// store's lock, without copying every column into a `serde_json::Value` tree first (a
/// 100,000-user read spent most of the emulator's time building and dropping those trees).
enum Rendered<'a> {
    Null,
    Name(&'static str),
    Scalar(&'a Value),
    Entity(Vec<(&'a str, Rendered<'a>)>),
    Array(Vec<Rendered<'a>>),
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rendered::Null => s.serialize_unit(),
            Rendered::Name(name) => s.serialize_str(name),
            Rendered::Scalar(v) => v.serialize(s),
            Rendered::Array(items) => s.collect_seq(items),
            Rendered::Entity(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Render `rec` with `proj` in the wire format.
fn render<'a>(
    store: &'a Store,
    def: &'static EntityDef,
    rec: &'a Record,
    proj: &'a Proj,
) -> Rendered<'a> {
    let mut fields: Vec<(&'a str, Rendered<'a>)> =
        vec![("__entity_type__", Rendered::Name(def.name))];
    // A later value for the same key replaces the earlier one, as a map insert does.
    let mut put = |key: &'a str, v: Rendered<'a>| match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = v,
        None => fields.push((key, v)),
    };
    let scalar = |col: &str| rec.get(col).map_or(Rendered::Null, Rendered::Scalar);
    if def.is_metadata() {
        for a in def.stored() {
            put(a.name, scalar(a.name));
        }
    } else {
        for col in def.primary_key.iter().chain(def.system_projections) {
            put(col, scalar(col));
        }
    }
    for (name, sub) in &proj.0 {
        let Some(attr) = def.attr(name) else { continue };
        let v = match attr.kind {
            Kind::Str | Kind::Bool => scalar(attr.alias_of.unwrap_or(attr.name)),
            Kind::Ref { target, fk } => {
                let t = entity(target).ok();
                let r = rec
                    .get(fk)
                    .filter(|v| !v.is_null())
                    .and_then(|v| store.table(target).by_key(&key_str(v)));
                match (t, r) {
                    (Some(t), Some(r)) => render(store, t, r, sub),
                    _ => Rendered::Null,
                }
            }
            Kind::Coll { target, fk } => match entity(target) {
                Ok(t) => Rendered::Array(
                    children(store, rec, Step::Coll(t, fk))
                        .into_iter()
                        .map(|c| render(store, t, c, sub))
                        .collect(),
                ),
                Err(_) => Rendered::Array(Vec::new()),
            },
            Kind::Meta => match entity(METADATA) {
                Ok(t) => Rendered::Array(
                    children(store, rec, Step::Meta(t))
                        .into_iter()
                        .map(|c| render(store, t, c, sub))
                        .collect(),
                ),
                Err(_) => Rendered::Array(Vec::new()),
            },
        };
        put(name, v);
    }
    // Keys in order, as `serde_json::Map` writes them.
    fields.sort_by(|a, b| a.0.cmp(b.0));
    Rendered::Entity(fields)
}

/// Render every stored column of `rec` (create/update results and state dumps).
pub fn render_full(def: &'static EntityDef, rec: &Record) -> Value {
    let mut m = Map::new();
    m.insert("__entity_type__".into(), Value::String(def.name.into()));
    for a in &def.attrs {
        if a.is_scalar() {
            let col = a.alias_of.unwrap_or(a.name);
            m.insert(a.name.into(), rec.get(col).cloned().unwrap_or(Value::Null));
        }
    }
    Value::Object(m)
}

/// Render `rec` with every stored column plus the named relation attributes (as the
/// server echoes back the relations a create/update set).
pub fn render_with(
    store: &Store,
    def: &'static EntityDef,
    rec: &Record,
    relations: &[&str],
) -> Value {
    let mut out = render_full(def, rec);
    let mut proj = Proj::default();
    for r in relations {
        proj.0.insert((*r).to_string(), Proj::default());
    }
    let extra = serde_json::to_value(render(store, def, rec, &proj)).unwrap_or(Value::Null);
    if let (Value::Object(o), Value::Object(extra)) = (&mut out, extra) {
        for r in relations {
            if let Some(v) = extra.get(*r) {
                o.insert((*r).to_string(), v.clone());
            }
        }
    }
    out
}

/// Run a parsed query.
pub fn run(
    store: &Store,
    cache: Option<&mut QueryCache>,
    q: &Query,
) -> Result<QueryPage, ApiError> {
    let def = entity(&q.entity).map_err(ApiError::validation)?;
    let proj = match &q.select {
        Some(paths) => build_proj(def, paths)?,
        None => {
            let paths: Vec<Vec<String>> = def
                .default_projections
                .iter()
                .map(|p| vec![p.to_string()])
                .collect();
            build_proj(def, &paths)?
        }
    };
    let seqs = matches(store, cache, q, def)?;
    let (slice, next_offset) = page_slice(&seqs, q.offset, q.limit);
    let table = store.table(def.name);
    let rows: Vec<Rendered> = slice
        .iter()
        .filter_map(|s| table.get(*s))
        .map(|r| render(store, def, r, &proj))
        .collect();
    let data = serde_json::value::to_raw_value(&rows)
        .map_err(|e| ApiError::server(format!("could not render the page: {e}")))?;
    Ok(QueryPage {
        entity: def.name,
        rows: rows.len(),
        data,
        next_offset,
    })
}

/// The primary-key string of a record (re-exported for actions).
pub fn record_key(def: &EntityDef, rec: &Record) -> String {
    pk_of(def, rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("alice", "al%"));
        assert!(like("Alice", "%LIC%"));
        assert!(like("alice", "a_ice"));
        assert!(!like("alice", "b%"));
        assert!(like("", "%"));
        assert!(!like("abc", "abcd"));
        assert!(like("aaaaaaaaaaaaaaaaaaaab", "%a%a%a%a%a%b"));
    }

    #[test]
    fn paging_terminates() {
        let s: Vec<u64> = (0..10).collect();
        assert_eq!(page_slice(&s, Some(0), Some(4)).1, Some(4));
        assert_eq!(page_slice(&s, Some(8), Some(4)).1, None);
        assert_eq!(page_slice(&s, Some(8), Some(2)).1, None);
        assert_eq!(page_slice(&s, Some(20), Some(4)).0.len(), 0);
        assert_eq!(page_slice(&s, Some(0), Some(0)).1, None);
        assert_eq!(page_slice(&s, None, None).0.len(), 10);
    }
}
