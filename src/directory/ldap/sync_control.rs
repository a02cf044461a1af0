//! The content synchronization controls of RFC 4533 (syncrepl), decoded by hand.
//!
//! ldap3 has parsers for them, but they panic on malformed BER (an empty BOOLEAN, an unknown
//! state, a component out of order), and lber's `parse_tag` recurses as deep as the input
//! nests. A server is not trusted to be well-formed, so these read the few fixed shapes RFC
//! 4533 defines with a flat reader: every length is checked against what is left, nothing
//! recurses on the input's structure, and anything unexpected is `None` — which the caller
//! turns into "the sync state is doubtful: read everything".

/// OID of the sync request control (sent, critical).
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
/// OID of the per-entry sync state control.
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// OID of the sync done control on the final result.
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// OID of the sync info intermediate message.
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";

/// What the server says about one entry it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// The sync state control of one entry: its state and entryUUID (16 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub state: EntryState,
    pub uuid: [u8; 16],
    pub cookie: Option<Vec<u8>>,
}

/// The sync done control: the cookie to keep, and whether the refresh was a delete phase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

/// A sync info message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    /// The end of a refresh phase (refreshDelete or refreshPresent).
    RefreshDone {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    /// Many entries at once: deleted ones (`refresh_deletes`) or present ones.
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<[u8; 16]>,
    },
}

// Universal tags and the context tags RFC 4533 uses.
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// A flat reader over one level of BER: each call takes the next element.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element's tag and contents. Only single-byte tags and definite lengths of up
    /// to four bytes, each within what is left.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (digits, after) = rest.split_at(count);
            rest = after;
            digits
                .iter()
                .fold(0usize, |n, &d| (n << 8) | usize::from(d))
        };
        if rest.len() < length {
            return None;
        }
        let (contents, after) = rest.split_at(length);
        self.rest = after;
        Some((tag, contents))
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, contents) if t == tag => Some(contents),
            _ => None,
        }
    }

    /// An OPTIONAL element with `tag`: taken when it is next.
    fn optional(&mut self, tag: u8) -> Option<Option<&'a [u8]>> {
        if self.peek_tag() == Some(tag) {
            Some(Some(self.expect(tag)?))
        } else {
            Some(None)
        }
    }

    /// A BOOLEAN DEFAULT `default`.
    fn boolean_or(&mut self, default: bool) -> Option<bool> {
        match self.optional(BOOLEAN)? {
            Some([byte]) => Some(*byte != 0),
            Some(_) => None,
            None => Some(default),
        }
    }
}

fn uuid(bytes: &[u8]) -> Option<[u8; 16]> {
    bytes.try_into().ok()
}

/// `syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING (16), cookie
/// OCTET STRING OPTIONAL }`.
pub fn parse_sync_state(value: &[u8]) -> Option<SyncState> {
    let mut outer = Reader::new(value);
    let mut seq = Reader::new(outer.expect(SEQUENCE)?);
    let state = match seq.expect(ENUMERATED)? {
        [0] => EntryState::Present,
        [1] => EntryState::Add,
        [2] => EntryState::Modify,
        [3] => EntryState::Delete,
        _ => return None,
    };
    let uuid = uuid(seq.expect(OCTET_STRING)?)?;
    let cookie = seq.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
    (seq.is_empty() && outer.is_empty()).then_some(SyncState {
        state,
        uuid,
        cookie,
    })
}

/// `syncDoneValue ::= SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDeletes BOOLEAN
/// DEFAULT FALSE }`. An absent value is all defaults.
pub fn parse_sync_done(value: Option<&[u8]>) -> Option<SyncDone> {
    let Some(value) = value else {
        return Some(SyncDone::default());
    };
    let mut outer = Reader::new(value);
    let mut seq = Reader::new(outer.expect(SEQUENCE)?);
    let cookie = seq.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
    let refresh_deletes = seq.boolean_or(false)?;
    (seq.is_empty() && outer.is_empty()).then_some(SyncDone {
        cookie,
        refresh_deletes,
    })
}

/// `syncInfoValue ::= CHOICE { newcookie [0] OCTET STRING, refreshDelete [1] SEQUENCE {
/// cookie OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE }, refreshPresent [2] (the same),
/// syncIdSet [3] SEQUENCE { cookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE, syncUUIDs
/// SET OF OCTET STRING } }`.
pub fn parse_sync_info(value: &[u8]) -> Option<SyncInfo> {
    let mut outer = Reader::new(value);
    let (tag, contents) = outer.next()?;
    if !outer.is_empty() {
        return None;
    }
    let mut seq = Reader::new(contents);
    let info = match tag {
        0x80 => return Some(SyncInfo::NewCookie(contents.to_vec())),
        0xa1 | 0xa2 => {
            let cookie = seq.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
            let refresh_done = seq.boolean_or(true)?;
            SyncInfo::RefreshDone {
                cookie,
                refresh_done,
            }
        }
        0xa3 => {
            let cookie = seq.optional(OCTET_STRING)?.map(<[u8]>::to_vec);
            let refresh_deletes = seq.boolean_or(false)?;
            let mut set = Reader::new(seq.expect(SET)?);
            let mut uuids = Vec::new();
            while !set.is_empty() {
                uuids.push(uuid(set.expect(OCTET_STRING)?)?);
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            }
        }
        _ => return None,
    };
    seq.is_empty().then_some(info)
}

/// An entryUUID as text, the way OpenLDAP writes the attribute.
pub fn uuid_text(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    const UUID: [u8; 16] = [
        0x5c, 0xa1, 0xe0, 0x00, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x2a,
    ];

    #[test]
    fn a_sync_state_with_and_without_a_cookie() {
        let body = [tlv(ENUMERATED, &[2]), tlv(OCTET_STRING, &UUID)].concat();
        let state = parse_sync_state(&tlv(SEQUENCE, &body)).unwrap();
        assert_eq!(state.state, EntryState::Modify);
        assert_eq!(state.uuid, UUID);
        assert_eq!(state.cookie, None);
        let body = [body, tlv(OCTET_STRING, b"rid=000,csn=1")].concat();
        let state = parse_sync_state(&tlv(SEQUENCE, &body)).unwrap();
        assert_eq!(state.cookie.as_deref(), Some(&b"rid=000,csn=1"[..]));
        assert_eq!(
            uuid_text(&state.uuid),
            "5ca1e000-0000-4000-8000-00000000002a"
        );
    }

    #[test]
    fn sync_done_defaults_and_values() {
        assert_eq!(parse_sync_done(None), Some(SyncDone::default()));
        let done = parse_sync_done(Some(&tlv(SEQUENCE, &[]))).unwrap();
        assert_eq!(done, SyncDone::default());
        let body = [tlv(OCTET_STRING, b"c"), tlv(BOOLEAN, &[0xff])].concat();
        let done = parse_sync_done(Some(&tlv(SEQUENCE, &body))).unwrap();
        assert_eq!(done.cookie.as_deref(), Some(&b"c"[..]));
        assert!(done.refresh_deletes);
    }

    #[test]
    fn sync_info_in_each_form() {
        assert_eq!(
            parse_sync_info(&tlv(0x80, b"k")),
            Some(SyncInfo::NewCookie(b"k".to_vec()))
        );
        assert_eq!(
            parse_sync_info(&tlv(0xa1, &tlv(OCTET_STRING, b"k"))),
            Some(SyncInfo::RefreshDone {
                cookie: Some(b"k".to_vec()),
                refresh_done: true
            })
        );
        let set = tlv(
            SET,
            &[tlv(OCTET_STRING, &UUID), tlv(OCTET_STRING, &UUID)].concat(),
        );
        let body = [tlv(BOOLEAN, &[1]), set].concat();
        assert_eq!(
            parse_sync_info(&tlv(0xa3, &body)),
            Some(SyncInfo::IdSet {
                cookie: None,
                refresh_deletes: true,
                uuids: vec![UUID, UUID]
            })
        );
    }

    /// What made ldap3's parsers panic is `None` here: an empty BOOLEAN, an unknown state, a
    /// short UUID, a length past the end, trailing bytes, a high tag number, deep nesting.
    #[test]
    fn malformed_values_are_refused_not_panicked_on() {
        let state = |s: u8| {
            let body = [tlv(ENUMERATED, &[s]), tlv(OCTET_STRING, &UUID)].concat();
            tlv(SEQUENCE, &body)
        };
        assert!(parse_sync_state(&state(4)).is_none());
        let short = tlv(
            SEQUENCE,
            &[tlv(ENUMERATED, &[1]), tlv(OCTET_STRING, &UUID[..15])].concat(),
        );
        assert!(parse_sync_state(&short).is_none());
        assert!(parse_sync_done(Some(&tlv(SEQUENCE, &tlv(BOOLEAN, &[])))).is_none());
        assert!(parse_sync_done(Some(&[0x30, 0x05, 0x04])).is_none());
        assert!(parse_sync_done(Some(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])).is_none());
        assert!(parse_sync_done(Some(&[0x30, 0x00, 0x00])).is_none());
        assert!(parse_sync_info(&[0x9f, 0x01, 0x00]).is_none());
        assert!(parse_sync_info(&tlv(0xa4, &[])).is_none());
        let deep: Vec<u8> = std::iter::repeat_n([0xa3u8, 0x80], 100_000)
            .flatten()
            .collect();
        assert!(parse_sync_info(&deep).is_none());
        assert!(parse_sync_state(&[]).is_none());
        // Any byte string at all: never a panic.
        for len in 0..6 {
            for seed in 0u32..2000 {
                let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i * 3)) as u8 ^ 0x30).collect();
                let _ = parse_sync_state(&bytes);
                let _ = parse_sync_done(Some(&bytes));
                let _ = parse_sync_info(&bytes);
            }
        }
    }
}
