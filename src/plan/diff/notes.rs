//! Notes for the admin about something missing or refused (a role ftrack lacks, a role of
//! the wrong type, a project that does not exist): one line per subject with how many users
//! it concerns and a few of them, not one line per user.

use rustc_hash::FxHashMap;

/// Notes about something missing or refused, one per subject however many users it
/// concerns: "… (12 users: a, b, c, d, e and 7 more)".
#[derive(Default)]
pub(super) struct Notes {
    /// Subject → the note's text (worded for its first user) and the usernames it concerns.
    by_subject: FxHashMap<String, (String, Vec<String>)>,
}

/// How many usernames a note lists before "and N more".
const NOTE_NAMES: usize = 5;

impl Notes {
    /// Records the note about `subject` for `username`; `text` words it, the first time only.
    pub(super) fn add(&mut self, subject: String, username: &str, text: impl FnOnce() -> String) {
        self.by_subject
            .entry(subject)
            .or_insert_with(|| (text(), Vec::new()))
            .1
            .push(username.to_string());
    }

    /// Takes in the notes of users planned after this one's: a subject keeps the text
    /// worded for its first user, and its users stay in plan order.
    pub(super) fn absorb(&mut self, later: Notes) {
        for (subject, (text, users)) in later.by_subject {
            self.by_subject
                .entry(subject)
                .or_insert_with(|| (text, Vec::new()))
                .1
                .extend(users);
        }
    }

    /// One line per subject, sorted by text.
    pub(super) fn render(self) -> Vec<String> {
        let mut notes: Vec<(String, Vec<String>)> = self.by_subject.into_values().collect();
        notes.sort();
        notes
            .into_iter()
            .map(|(text, users)| {
                let shown: Vec<String> = users
                    .iter()
                    .take(NOTE_NAMES)
                    .map(|u| format!("`{u}`"))
                    .collect();
                let more = users.len().saturating_sub(NOTE_NAMES);
                let count = if users.len() == 1 {
                    "1 user".to_string()
                } else {
                    format!("{} users", users.len())
                };
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{text}; {count}: {}{tail}", shown.join(", "))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_note_per_subject_with_a_count_and_five_names() {
        let mut notes = Notes::default();
        for user in ["u1", "u2", "u3", "u4", "u5", "u6", "u7"] {
            notes.add("role x".into(), user, || {
                format!("role X is missing (first: {user})")
            });
        }
        notes.add("project p".into(), "u9", || "project P is missing".into());
        let mut later = Notes::default();
        later.add("role x".into(), "u8", || "worded for u8".into());
        notes.absorb(later);
        assert_eq!(
            notes.render(),
            [
                "project P is missing; 1 user: `u9`",
                "role X is missing (first: u1); 8 users: `u1`, `u2`, `u3`, `u4`, `u5` and 3 more",
            ]
        );
    }
}
