//! The plan as text: the `--output json` document and the human diff, written as they are
//! rendered. A first run of 100,000 users is 540,000 operations and a 237 MB document;
//! rendering them was most of such a run's last second on one core, so operations are
//! rendered in batches, a thread per core, and each batch is written in order.

use super::operation::{Change, FieldName};
use super::{Operation, OperationKind, Plan};
use litemap::LiteMap;
use serde::Serialize;
use std::io::{self, Write};

/// Operations rendered before they are written: a few megabytes of text.
const BATCH: usize = 8 * 1024;

/// Indentation of an operation inside the JSON document's `operations` list.
const OPERATION_INDENT: &[u8] = b"    ";

/// A comma, a line break and the indentation of up to 15 levels: the start of a document's
/// next line is a slice of it.
const NEXT_LINE: &[u8; 32] = b",\n                              ";

/// serde_json's pretty format (two spaces a level, `": "` after a key, `[]` and `{}` when
/// empty) starting at a given depth, so that a part of a document is written in place,
/// already indented: [`serde_json::ser::PrettyFormatter`] always starts at the left margin.
struct PrettyAt {
    depth: usize,
    has_value: bool,
}

impl PrettyAt {
    fn new(depth: usize) -> PrettyAt {
        PrettyAt {
            depth,
            has_value: false,
        }
    }

    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            out.write_all(b"\n")?;
            self.indent(out)?;
        }
        out.write_all(bracket)
    }

    fn next<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        let start = usize::from(first);
        match NEXT_LINE.get(start..2 + 2 * self.depth) {
            // One write per key or item: most of the document is its indentation.
            Some(line) => out.write_all(line),
            None => {
                out.write_all(&NEXT_LINE[start..2])?;
                self.indent(out)
            }
        }
    }

    fn indent<W: ?Sized + Write>(&self, out: &mut W) -> io::Result<()> {
        match NEXT_LINE.get(2..2 + 2 * self.depth) {
            Some(spaces) => out.write_all(spaces),
            None => (0..self.depth).try_for_each(|_| out.write_all(b"  ")),
        }
    }
}

impl serde_json::ser::Formatter for PrettyAt {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.next(out, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.open(out, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.close(out, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> io::Result<()> {
        self.next(out, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// `value` pretty-printed in place at `depth`.
fn write_pretty<W: Write>(out: &mut W, value: &impl Serialize, depth: usize) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, PrettyAt::new(depth));
    value.serialize(&mut serializer).map_err(io::Error::from)
}

/// `op` as [`write_pretty`] writes it at depth 2, written directly. Through serde, most of
/// a first run's rendering went to each key's bookkeeping and to escaping the same dozen
/// keys again for each of 540,000 operations; here a key and its indentation are one copy.
/// `Operation`'s `Serialize` stays the definition of the document: the tests compare the
/// two for every field, and for text that needs escaping.
pub(super) fn write_operation(op: &Operation, buf: &mut Vec<u8>) {
    let mut object = Object::open(buf, 3);
    if op.add_role {
        object.key("add_role").extend_from_slice(b"true");
    }
    object.changes("changes", &op.changes);
    object.text("group", op.group.as_deref());
    object.text("group_id", op.group_id.as_deref());
    object.text("kind", Some(op.kind.as_str()));
    if let Some(id) = &op.membership_id {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        object.text("membership_id", Some(id.as_text(&mut text)));
    }
    object.changes("metadata", &op.metadata);
    object.text("project_id", op.project_id.as_deref());
    object.text("reason", Some(&op.reason));
    object.text("role", op.role.as_deref());
    object.text("role_id", op.role_id.as_deref());
    object.text("scope", op.scope.as_deref());
    object.text("target", Some(&op.target));
    object.text("user_id", op.user_id.as_deref());
    object.close();
}

/// A JSON object being written into a vector in serde_json's pretty format, its keys at
/// `depth`. Writing to a vector does not fail, so nothing here returns an error.
struct Object<'b> {
    buf: &'b mut Vec<u8>,
    depth: usize,
    empty: bool,
}

impl<'b> Object<'b> {
    fn open(buf: &'b mut Vec<u8>, depth: usize) -> Object<'b> {
        buf.push(b'{');
        Object {
            buf,
            depth,
            empty: true,
        }
    }

    /// Starts the next entry; its value is written next.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        let _ = PrettyAt::new(self.depth).next(self.buf, self.empty);
        self.empty = false;
        json_string(self.buf, key);
        self.buf.extend_from_slice(b": ");
        self.buf
    }

    /// A text entry, left out when absent.
    fn text(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            json_string(self.key(key), value);
        }
    }

    /// A text entry, `null` when absent.
    fn nullable(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => json_string(self.key(key), value),
            None => self.key(key).extend_from_slice(b"null"),
        }
    }

    /// A map of field changes, left out when empty.
    fn changes(&mut self, key: &str, changes: &LiteMap<FieldName, Change>) {
        if changes.is_empty() {
            return;
        }
        let depth = self.depth + 1;
        let mut fields = Object::open(self.key(key), depth);
        for (field, change) in changes.iter() {
            let mut values = Object::open(fields.key(field), depth + 1);
            values.nullable("from", change.from.as_deref());
            values.nullable("to", change.to.as_deref());
            values.close();
        }
        fields.close();
    }

    fn close(self) {
        if !self.empty {
            self.buf.push(b'\n');
            let _ = PrettyAt::new(self.depth - 1).indent(self.buf);
        }
        self.buf.push(b'}');
    }
}

/// `text` as a JSON string: copied as it is when nothing in it needs escaping (keys, ids,
/// names, nearly every reason), escaped by serde_json otherwise.
fn json_string(buf: &mut Vec<u8>, text: &str) {
    // Whole, with no early exit, so that the check runs many bytes at a time.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20 && b != b'"' && b != b'\\')
    });
    if plain {
        buf.reserve(text.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else {
        let _ = serde_json::to_writer(buf, text);
    }
}

impl Plan {
    /// Writes the `--output json` document to `out`, pretty, keys sorted: `notes`,
    /// `operations`, `skipped`, `summary`. Exactly what `serde_json::to_writer_pretty` of
    /// the whole would print, without a copy of the plan: each part is written pretty at
    /// its depth ([`PrettyAt`]).
    pub fn write_json(&self, mut out: impl Write) -> io::Result<()> {
        out.write_all(b"{\n  \"notes\": ")?;
        write_pretty(&mut out, &self.notes, 1)?;
        out.write_all(b",\n  \"operations\": ")?;
        if self.operations.is_empty() {
            out.write_all(b"[]")?;
        } else {
            out.write_all(b"[\n")?;
            write_rendered(&mut out, &self.operations, |i, op, buf| {
                if i > 0 {
                    buf.extend_from_slice(b",\n");
                }
                buf.extend_from_slice(OPERATION_INDENT);
                write_operation(op, buf);
                Ok(())
            })?;
            out.write_all(b"\n  ]")?;
        }
        out.write_all(b",\n  \"skipped\": ")?;
        write_pretty(&mut out, &self.skipped, 1)?;
        out.write_all(b",\n  \"summary\": ")?;
        write_pretty(&mut out, &self.summary(), 1)?;
        out.write_all(b"\n}\n")
    }

    /// Writes the human diff, one line per change with its details and reason, to `out`.
    pub fn write_human(&self, mut out: impl Write) -> io::Result<()> {
        if self.operations.is_empty() {
            writeln!(out, "No changes: ftrack matches the directory.")?;
        }
        write_rendered(&mut out, &self.operations, |_, op, buf| {
            human_lines(op, buf)
        })?;
        for s in &self.skipped {
            writeln!(out, "! skipped {}: {}", s.dn, s.reason)?;
        }
        for n in &self.notes {
            writeln!(out, "i {n}")?;
        }
        let counts: Vec<String> = OperationKind::ALL
            .iter()
            .zip(self.counts())
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if !counts.is_empty() {
            writeln!(out, "\nPlan: {}.", counts.join(", "))?;
        }
        Ok(())
    }
}

/// An operation's lines of the human diff: its summary, each change, and why.
fn human_lines(op: &Operation, buf: &mut Vec<u8>) -> io::Result<()> {
    let quoted = |value: &Option<String>, absent: &str| match value {
        Some(v) => format!("{v:?}"),
        None => absent.to_string(),
    };
    writeln!(buf, "{}", op.summary())?;
    for (field, change) in op.changes.iter().chain(&op.metadata) {
        writeln!(
            buf,
            "    {field}: {} -> {}",
            quoted(&change.from, "(none)"),
            quoted(&change.to, "(removed)"),
        )?;
    }
    if !op.reason.is_empty() {
        writeln!(buf, "    because {}", op.reason)?;
    }
    Ok(())
}

/// Writes `items` to `out` in order as `render` renders each (with its index). Batch by
/// batch, each rendered on a thread per core while the batch before is written (writing
/// 237 MB is a third of the work): two sets of buffers go back and forth, so memory stays
/// at two batches' text.
fn write_rendered<T: Sync>(
    out: &mut impl Write,
    items: &[T],
    render: impl Fn(usize, &T, &mut Vec<u8>) -> io::Result<()> + Sync,
) -> io::Result<()> {
    let threads = crate::parallel::threads_for(BATCH.min(items.len()));
    let render_batch = |b: usize, batch: &[T], buffers: &mut [Vec<u8>]| {
        let parts = crate::parallel::threads_for(batch.len()).min(buffers.len());
        for buf in buffers.iter_mut() {
            buf.clear();
        }
        crate::parallel::map_chunks_with(batch, &mut buffers[..parts], |chunk, first, buf| {
            for (i, item) in chunk.iter().enumerate() {
                render(b * BATCH + first + i, item, buf)?;
            }
            Ok::<_, io::Error>(())
        })
        .into_iter()
        .collect::<io::Result<()>>()
    };
    if items.len() <= BATCH {
        let mut buffers = vec![Vec::new(); threads];
        render_batch(0, items, &mut buffers)?;
        return buffers.iter().try_for_each(|buf| out.write_all(buf));
    }
    std::thread::scope(|scope| {
        let (rendered, to_write) = std::sync::mpsc::sync_channel::<io::Result<Vec<Vec<u8>>>>(1);
        let (written, to_fill) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
        for _ in 0..2 {
            let _ = written.send(vec![Vec::new(); threads]);
        }
        scope.spawn(move || {
            for (b, batch) in items.chunks(BATCH).enumerate() {
                // Either channel closed: the writer stopped (on an error it returns).
                let Ok(mut buffers) = to_fill.recv() else {
                    return;
                };
                let result = render_batch(b, batch, &mut buffers).map(|()| buffers);
                if rendered.send(result).is_err() {
                    return;
                }
            }
        });
        for buffers in to_write {
            let buffers = buffers?;
            for buf in &buffers {
                out.write_all(buf)?;
            }
            let _ = written.send(buffers);
        }
        Ok(())
    })
}
